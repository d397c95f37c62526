"""The evaluation report of `recstack evaluate`: one record, written as JSON, TensorBoard and text.

`EvaluationReport` holds everything the evaluation measured (the metric table of the model and
its baselines, the accuracy-diversity curve of the re-ranker over lambda, the exposure
distributions, the segment breakdown, cold start and debiasing). This module writes it as JSON
and TensorBoard summaries and formats it for the terminal; `evaluation.html_report` renders it
as a self-contained HTML page with plots.

Lifts compare the model with a baseline so that a lift above 1 always means the model is better:
`model / baseline` for metrics where higher is better, `baseline / model` for the metrics in
`LOWER_IS_BETTER` (popularity concentration).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

MODEL = "model"
"""The system name of the evaluated model; every other system in `metrics` is a baseline."""

LOWER_IS_BETTER = frozenset({"gini", "mean_popularity", "popularity_percentile", "rmse", "mae"})
"""Metric names (without the `@k` suffix) where a smaller value is better."""

Table = dict[str, dict[str, float | None]]


def is_lower_better(metric: str) -> bool:
    """Whether smaller values of `metric` (e.g. "gini@10") are better."""
    return metric.split("@", 1)[0] in LOWER_IS_BETTER


@dataclasses.dataclass(frozen=True)
class EvaluationReport:
    """Everything `recstack evaluate` measured, ready to be written as JSON, TensorBoard, HTML.

    Attributes:
      meta: Run description (data dir, split, model, ks, date, users, items, command).
      metrics: `{system: {metric: value}}`; system `MODEL` is the model, the others are
        baselines ("popularity", "itemknn", ...). Metric names carry their cutoff ("recall@10").
        Values are floats, or None where a metric could not be computed.
      lambda_curve: Points of the re-ranker sweep, `[{"lambda": x, accuracy: y, diversity: z}]`
        in sweep order.
      lambda_metrics: `(accuracy_metric, diversity_metric)`: the two keys of the curve points
        plotted against each other; required when `lambda_curve` is not empty.
      chosen_lambda: The lambda the re-ranker uses, or None.
      exposure: `{system: counts}`: how often each catalog item was recommended (one count per
        item, zeros included; any order).
      training_popularity: Interactions per catalog item in the training split (any order).
      segments: `{system: {segment: {metric: value}}}` for user segments (new, light, heavy) and
        item segments (head, torso, tail).
      cold_start: `{system: {metric: value}}` on held-out cold items, or empty.
      debiasing: `{variant: {metric: value}}` (with/without logQ, plain vs IPS), or empty.

    Raises:
      ValueError: A lambda curve without `lambda_metrics`, or a curve point missing one of them.
    """

    meta: dict[str, Any]
    metrics: Table
    lambda_curve: list[dict[str, float]] = dataclasses.field(default_factory=list)
    lambda_metrics: tuple[str, str] | None = None
    chosen_lambda: float | None = None
    exposure: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    training_popularity: list[float] = dataclasses.field(default_factory=list)
    segments: dict[str, Table] = dataclasses.field(default_factory=dict)
    cold_start: Table = dataclasses.field(default_factory=dict)
    debiasing: Table = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.lambda_curve:
            return
        if self.lambda_metrics is None or len(self.lambda_metrics) != 2:
            raise ValueError(
                f"lambda_metrics={self.lambda_metrics!r}: a lambda curve needs "
                "lambda_metrics=(accuracy_metric, diversity_metric), e.g. "
                "('ndcg@10', 'ild_categories@10')"
            )
        wanted = ("lambda", *self.lambda_metrics)
        for index, point in enumerate(self.lambda_curve):
            missing = [key for key in wanted if key not in point]
            if missing:
                raise ValueError(
                    f"lambda_curve[{index}] has keys {sorted(point)}, missing {missing}; every "
                    f"point needs {list(wanted)}"
                )

    @property
    def baselines(self) -> list[str]:
        """The systems other than the model, in the order of `metrics`."""
        return [system for system in self.metrics if system != MODEL]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; non-finite numbers (NaN, inf) become None."""
        return _finite(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationReport:
        """The report of `to_dict` (or of a JSON file written by `write_json`).

        Raises:
          ValueError: `data` lacks "meta" or "metrics", or has keys the report does not know.
        """
        fields = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        missing = [name for name in ("meta", "metrics") if name not in data]
        if unknown or missing:
            raise ValueError(
                f"not an evaluation report: unknown keys {unknown}, missing {missing}; "
                f"expected keys among {sorted(fields)}"
            )
        values = dict(data)
        if values.get("lambda_metrics") is not None:
            values["lambda_metrics"] = tuple(values["lambda_metrics"])
        return cls(**values)


def _finite(value: Any) -> Any:
    if hasattr(value, "tolist"):  # NumPy arrays and scalars become lists and Python numbers.
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def write_json(report: EvaluationReport, path: str) -> str:
    """Writes `report.to_dict()` as indented JSON to `path` (folders created); returns `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(report.to_dict(), handle, indent=2, allow_nan=False)
        handle.write("\n")
    return path


def read_json(path: str) -> EvaluationReport:
    """The report a `write_json` call wrote to `path`."""
    with open(path, encoding="utf-8") as handle:
        return EvaluationReport.from_dict(json.load(handle))


def metric_lift(metric: str, model: float | None, baseline: float | None) -> float | None:
    """How many times better the model is than the baseline on `metric` (above 1: better).

    `model / baseline`, or `baseline / model` for `LOWER_IS_BETTER` metrics. Equal zeros give
    1.0, a zero denominator against a positive numerator gives `math.inf`. None when a value is
    missing, not finite or negative (a ratio of signed values has no meaning).
    """
    values = (model, baseline)
    if any(value is None or not math.isfinite(value) or value < 0 for value in values):
        return None
    numerator, denominator = (baseline, model) if is_lower_better(metric) else values
    if denominator == 0:
        return 1.0 if numerator == 0 else math.inf
    return numerator / denominator


def lifts(report: EvaluationReport, baseline: str) -> dict[str, float | None]:
    """`{metric: lift}` of the model over `baseline` on every metric both report.

    Raises:
      ValueError: The report has no model row, or no row named `baseline`.
    """
    for system in (MODEL, baseline):
        if system not in report.metrics:
            raise ValueError(
                f"no system {system!r} in the report's metrics; it has {sorted(report.metrics)}"
            )
    model, base = report.metrics[MODEL], report.metrics[baseline]
    return {name: metric_lift(name, model[name], base[name]) for name in model if name in base}


def format_value(value: float | None) -> str:
    """A metric value with 4 significant digits; "-" for a missing one."""
    return "-" if value is None else f"{value:.4g}"


def format_lift(lift: float | None) -> str:
    """A lift as "1.52x"; "inf" for a zero baseline, "n/a" where undefined."""
    if lift is None:
        return "n/a"
    return "inf" if math.isinf(lift) else f"{lift:.2f}x"


def metric_names(tables: Iterable[Mapping[str, Any]]) -> list[str]:
    """The metric names of several `{metric: value}` rows, in order of first appearance."""
    return list(dict.fromkeys(name for table in tables for name in table))


def _table_cells(report: EvaluationReport) -> tuple[list[str], list[list[str]]]:
    systems = ([MODEL] if MODEL in report.metrics else []) + report.baselines
    header = ["metric", *systems]
    model = report.metrics.get(MODEL, {})
    rows = []
    for name in metric_names(report.metrics[system] for system in systems):
        label = f"{name} (lower is better)" if is_lower_better(name) else name
        row = [label]
        for system in systems:
            value = report.metrics[system].get(name)
            cell = format_value(value)
            if system != MODEL and value is not None and name in model:
                cell += f" ({format_lift(metric_lift(name, model[name], value))})"
            row.append(cell)
        rows.append(row)
    return header, rows


def format_table(report: EvaluationReport) -> str:
    """The metric table for the terminal: a row per metric, a column per system.

    Each baseline cell shows the baseline's value and, in parentheses, the model's lift over it.
    """
    header, rows = _table_cells(report)
    widths = [max(len(row[col]) for row in [header, *rows]) for col in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append("(x): how many times better the model is than that baseline")
    return "\n".join(lines)


def markdown_table(report: EvaluationReport) -> str:
    """The metric table of `format_table` as a Markdown table (TensorBoard's text plugin)."""
    header, rows = _table_cells(report)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_tensorboard(report: EvaluationReport, logdir: str) -> None:
    """Writes the report as TensorBoard summaries under `logdir`.

    Scalars at step 0: `<system>/<metric>` for the metric table, `cold_start/<system>/<metric>`,
    `debiasing/<variant>/<metric>`, `segments/<system>/<segment>/<metric>` and
    `lambda_curve/chosen_lambda`. The lambda curve as series over step = point index:
    `lambda_curve/lambda` (the lambda value itself) and `lambda_curve/<metric>` for the other
    keys of the points. Text `report/metrics`: the metric table in Markdown.
    """
    import tensorflow as tf  # Loaded only when TensorBoard output is wanted: it is slow.

    scalars = _flatten("", report.metrics) | _flatten("cold_start/", report.cold_start)
    scalars |= _flatten("debiasing/", report.debiasing)
    for system, by_segment in report.segments.items():
        scalars |= _flatten(f"segments/{system}/", by_segment)
    scalars["lambda_curve/chosen_lambda"] = report.chosen_lambda

    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default(step=0):
        for tag, value in scalars.items():
            if value is not None and math.isfinite(value):  # A missing value is no point.
                tf.summary.scalar(tag, value)
        for step, point in enumerate(report.lambda_curve):
            for key, value in point.items():
                if value is not None and math.isfinite(value):
                    tf.summary.scalar(f"lambda_curve/{key}", value, step=step)
        tf.summary.text("report/metrics", markdown_table(report))
    writer.close()


def _flatten(prefix: str, table: Mapping[str, Mapping[str, float | None]]) -> dict[str, Any]:
    return {
        f"{prefix}{row}/{name}": value
        for row, values in table.items()
        for name, value in values.items()
    }
