"""The evaluation report as one self-contained HTML page: tables and matplotlib plots.

Everything lives in the file: the CSS is inline and every plot is a base64 PNG data URI drawn
with matplotlib's Agg renderer, so the page can be mailed, attached to a CI run or opened
offline. A Content-Security-Policy forbids any other source, so a stray external reference fails
visibly instead of loading from the network. Sections without data are left out; `PLOT_IDS`
lists the plots.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from evaluation.report import (
    MODEL,
    EvaluationReport,
    format_lift,
    format_value,
    is_lower_better,
    metric_lift,
    metric_names,
)

PLOT_IDS = {
    "plot-lambda-curve": "Accuracy and diversity of the re-ranker over lambda, chosen one marked",
    "plot-exposure-lorenz": "Lorenz curves of item exposure per system and of training popularity",
    "plot-exposure-rank": "Rank-frequency of item exposure per system and of training popularity",
    "plot-mean-popularity": "Mean training popularity of the recommended items per system",
    "plot-segments": "Metrics per user segment and item segment",
}
"""`{id: caption}` of the plot images (`<img id=... alt=caption>`), in page order."""

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .3em .7em; text-align: right; }
th:first-child, td:first-child { text-align: left; } thead th { background: #f3f3f3; }
td.best { background: #dff3df; font-weight: bold; }
.lift { color: #666; font-size: .85em; } .note { color: #666; font-size: .9em; }
img { max-width: 100%; height: auto; } figure { margin: 1em 0; }
.row { display: flex; flex-wrap: wrap; gap: 1em; } .row figure { flex: 1 1 400px; }
"""
# Lets a headless browser (and the tests) confirm that every plot decoded.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var loaded = images.filter(function (image) { return image.complete && image.naturalWidth > 0; });
  document.body.setAttribute("data-images-loaded", loaded.length + "/" + images.length);
});
"""
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def write_html(report: EvaluationReport, path: str) -> str:
    """Writes `render_html(report)` to `path` (folders created) and returns `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_html(report))
    return path


def render_html(report: EvaluationReport) -> str:
    """The report as one HTML document (a string) with inline CSS and embedded PNG plots."""
    sections = [
        _metrics_section(report),
        _lambda_section(report),
        _exposure_section(report),
        _segments_section(report),
        _simple_section("cold-start", "Cold start", report.cold_start),
        _simple_section("debiasing", "Debiasing", report.debiasing),
    ]
    meta = "".join(
        f"<tr><th>{_esc(key)}</th><td>{_esc(_meta_value(value))}</td></tr>"
        for key, value in report.meta.items()
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>recstack evaluation report</title><style>{_CSS}</style>"
        f"<script>{_SCRIPT}</script></head>\n<body>\n<h1>recstack evaluation report</h1>\n"
        f'<table id="meta">{meta}</table>\n'
        + "\n".join(s for s in sections if s)
        + "\n</body></html>\n"
    )


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _meta_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _section(section_id: str, title: str, *parts: str) -> str:
    return f'<section id="{section_id}"><h2>{_esc(title)}</h2>\n' + "\n".join(parts) + "</section>"


def _table(
    rows: Sequence[tuple[str, str, Mapping[str, Any]]],
    columns: Sequence[str],
    lift_over: Mapping[str, Any] | None = None,
) -> str:
    """An HTML table: `rows` of (label, metric, {column: value}); the best cell of a row is
    highlighted; with `lift_over` (the model's row), baseline cells also show the model's lift."""
    head = "".join(f"<th>{_esc(column)}</th>" for column in ("", *columns))
    body = []
    for label, metric, values in rows:
        present = [v for v in values.values() if v is not None and math.isfinite(v)]
        best = (min if is_lower_better(metric) else max)(present) if len(present) > 1 else None
        cells = [f"<td>{_esc(label)}{' ↓' if is_lower_better(metric) else ''}</td>"]
        for column in columns:
            value = values.get(column)
            text = _esc(format_value(value))
            if lift_over and column != MODEL and value is not None and metric in lift_over:
                lift = format_lift(metric_lift(metric, lift_over[metric], value))
                text += f' <span class="lift">({_esc(lift)})</span>'
            css = ' class="best"' if best is not None and value == best else ""
            cells.append(f"<td{css}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _metrics_section(report: EvaluationReport) -> str:
    if not report.metrics:
        return ""
    systems = ([MODEL] if MODEL in report.metrics else []) + report.baselines
    names = metric_names(report.metrics[system] for system in systems)
    rows = [(name, name, {s: report.metrics[s].get(name) for s in systems}) for name in names]
    model = report.metrics.get(MODEL)
    note = '<p class="note">Best value per row highlighted; ↓ marks metrics where lower is better; '
    note += "(x): how many times better the model is than that baseline.</p>"
    return _section("metrics", "Metrics against baselines", _table(rows, systems, model), note)


def _simple_section(section_id: str, title: str, table: Mapping[str, Mapping[str, Any]]) -> str:
    if not table:
        return ""
    columns = list(table)
    rows = [(n, n, {c: table[c].get(n) for c in columns}) for n in metric_names(table.values())]
    return _section(section_id, title, _table(rows, columns))


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # Imported on use: matplotlib reads its config files.

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _img(plot_id: str, figure: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = PLOT_IDS[plot_id]
    return (
        f'<figure><img id="{plot_id}" alt="{_esc(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([math.nan if value is None else float(value) for value in values], dtype=float)


def _colors(report: EvaluationReport) -> dict[str, str]:
    """One colour per system, the same in every plot: the metric table's order, then the rest."""
    names = [*report.metrics, *report.exposure, *report.segments]
    return {name: f"C{index % 10}" for index, name in enumerate(dict.fromkeys(names))}


def _lambda_section(report: EvaluationReport) -> str:
    if not report.lambda_curve:
        return ""
    accuracy, diversity = report.lambda_metrics
    points = sorted(report.lambda_curve, key=lambda point: point["lambda"])
    lambdas, acc, div = (
        _floats([p[key] for p in points]) for key in ("lambda", accuracy, diversity)
    )
    figure = _figure(11, 4)
    over_lambda, trade_off = figure.subplots(1, 2)
    over_lambda.plot(lambdas, acc, "o-", color="C0")
    over_lambda.set(xlabel="lambda", title="accuracy and diversity over lambda")
    over_lambda.set_ylabel(accuracy, color="C0")
    twin = over_lambda.twinx()
    twin.plot(lambdas, div, "s--", color="C1")
    twin.set_ylabel(diversity, color="C1")
    trade_off.plot(div, acc, "o-", color="C2")
    trade_off.set(xlabel=diversity, ylabel=accuracy, title="accuracy-diversity trade-off")
    for lam, x, y in zip(lambdas, div, acc, strict=True):
        trade_off.annotate(f"λ={lam:g}", (x, y), xytext=(4, 4), textcoords="offset points")
    text = "No lambda was chosen."
    if report.chosen_lambda is not None:
        label = f"chosen λ={report.chosen_lambda:g}"
        over_lambda.axvline(report.chosen_lambda, color="k", linestyle=":", label=label)
        at = int(np.argmin(np.abs(lambdas - report.chosen_lambda)))
        trade_off.plot(div[at], acc[at], "*", markersize=18, color="C3", label=label, zorder=3)
        over_lambda.legend(loc="lower left")
        trade_off.legend(loc="best")
        text = f"Chosen lambda: <b>{report.chosen_lambda:g}</b> ({_esc(accuracy)} "
        text += f"{format_value(acc[at])}, {_esc(diversity)} {format_value(div[at])})."
    plot = _img("plot-lambda-curve", figure)
    return _section("lambda", "Accuracy-diversity curve", plot, f"<p>{text}</p>")


def _gini(x: np.ndarray, y: np.ndarray) -> float:
    """The Gini coefficient of a Lorenz curve: 1 - twice the area under it."""
    return float(1.0 - np.sum(np.diff(x) * (y[1:] + y[:-1])))


def _lorenz(counts: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative share of items (least exposed first) and of exposure; empty when no exposure."""
    values = np.sort(_floats(counts))
    if values.size == 0 or not values.sum() > 0:
        return np.zeros(0), np.zeros(0)
    shares = np.concatenate([[0.0], np.cumsum(values) / values.sum()])
    return np.linspace(0.0, 1.0, values.size + 1), shares


def _thin(size: int, geometric: bool = False, most: int = 2000) -> np.ndarray:
    """At most `most` indices into `size` points, ends kept: big catalogs plot just as fast."""
    if size <= most:
        return np.arange(size)
    spaced = np.geomspace(1, size, most) - 1 if geometric else np.linspace(0, size - 1, most)
    return np.unique(spaced.round().astype(int))


def _exposure_plots(report: EvaluationReport) -> list[str]:
    series = dict(report.exposure)
    if report.training_popularity:
        series["training popularity"] = report.training_popularity
    if not series:
        return []
    colors = _colors(report)
    lorenz, rank = _figure(5.5, 4.5), _figure(5.5, 4.5)
    lorenz_ax, rank_ax = lorenz.subplots(), rank.subplots()
    lorenz_ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="equal exposure")
    for name, counts in series.items():
        style = {"color": colors.get(name, "k"), "linestyle": "--" if name not in colors else "-"}
        x, y = _lorenz(counts)
        if x.size:
            keep = _thin(x.size)
            lorenz_ax.plot(x[keep], y[keep], label=f"{name} (Gini {_gini(x, y):.3f})", **style)
        shares = np.sort(_floats(counts))[::-1]
        shares = shares[shares > 0] / np.nansum(shares) if np.nansum(shares) > 0 else shares[:0]
        keep = _thin(shares.size, geometric=True)
        rank_ax.loglog(keep + 1, shares[keep], label=name, **style)
    lorenz_ax.set(xlabel="share of items (least exposed first)", ylabel="share of exposure")
    rank_ax.set(xlabel="item rank", ylabel="share of exposure")
    lorenz_ax.set_title("Lorenz curve of exposure")
    rank_ax.set_title("rank-frequency of exposure")
    lorenz_ax.legend(fontsize=8)
    rank_ax.legend(fontsize=8)
    lorenz_img = _img("plot-exposure-lorenz", lorenz)
    rank_img = _img("plot-exposure-rank", rank)
    return [f'<div class="row">{lorenz_img}{rank_img}</div>']


def _popularity_plot(report: EvaluationReport) -> list[str]:
    names = [n for n in metric_names(report.metrics.values()) if n.startswith("mean_popularity")]
    values = {s: row.get(names[0]) for s, row in report.metrics.items()} if names else {}
    values = {system: value for system, value in values.items() if value is not None}
    if not values:
        return []
    figure = _figure(6, 3.5)
    axes = figure.subplots()
    colors = _colors(report)
    bars = axes.bar(list(values), list(values.values()), color=[colors[s] for s in values])
    axes.bar_label(bars, fmt="%.4g", fontsize=8)
    axes.set(ylabel=f"{names[0]} (lower is better)", title="popularity of recommended items")
    return [_img("plot-mean-popularity", figure)]


def _exposure_section(report: EvaluationReport) -> str:
    parts = _exposure_plots(report) + _popularity_plot(report)
    return _section("exposure", "Coverage and popularity", *parts) if parts else ""


def _segments_section(report: EvaluationReport) -> str:
    systems = list(report.segments)
    segments = list(dict.fromkeys(s for by in report.segments.values() for s in by))
    names = metric_names(t for by in report.segments.values() for t in by.values())
    if not names:
        return ""
    cols, rows = min(3, len(names)), math.ceil(len(names) / 3)
    figure = _figure(4.2 * cols, 3.2 * rows + 0.5)
    axes = figure.subplots(rows, cols, squeeze=False).ravel()
    width, positions, colors = 0.8 / len(systems), np.arange(len(segments)), _colors(report)
    for ax, name in zip(axes, names, strict=False):
        for index, system in enumerate(systems):
            heights = _floats([report.segments[system].get(s, {}).get(name) for s in segments])
            offset = (index - (len(systems) - 1) / 2) * width
            ax.bar(positions + offset, heights, width, label=system, color=colors[system])
        ax.set_xticks(positions, segments, fontsize=8)
        ax.set_title(name + (" (lower is better)" if is_lower_better(name) else ""), fontsize=10)
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(systems))
    table = [
        (
            f"{segment}: {name}",
            name,
            {s: report.segments[s].get(segment, {}).get(name) for s in systems},
        )
        for segment in segments
        for name in names
    ]
    plot = _img("plot-segments", figure)
    return _section("segments", "Segments", plot, _table(table, systems))
