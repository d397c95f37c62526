"""The plots of the HTML evaluation report, drawn with matplotlib and embedded as PNG figures.

Each public function draws one part of `evaluation.html_report`'s page from an
`EvaluationReport` and returns `<figure>` HTML whose image is a base64 PNG data URI, rendered
with matplotlib's Agg backend; `PLOT_IDS` lists the images. matplotlib is imported only when a
figure is drawn (it reads its config files on import).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluation.report import EvaluationReport, is_lower_better, metric_names

PLOT_IDS = {
    "plot-lambda-curve": "Accuracy and diversity of the re-ranker over lambda, chosen one marked",
    "plot-exposure-lorenz": "Lorenz curves of item exposure per system and of training popularity",
    "plot-exposure-rank": "Rank-frequency of item exposure per system and of training popularity",
    "plot-mean-popularity": "Mean training popularity of the recommended items per system",
    "plot-segments": "Metrics per user segment and item segment",
}
"""`{id: caption}` of the plot images (`<img id=... alt=caption>`), in page order."""


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # Imported on use: matplotlib reads its config files.

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _img(plot_id: str, figure: Any) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    caption = html.escape(PLOT_IDS[plot_id], quote=True)
    return (
        f'<figure><img id="{plot_id}" alt="{caption}" src="data:image/png;base64,{data}">'
        f"<figcaption>{caption}</figcaption></figure>"
    )


def _floats(values: Sequence[Any]) -> np.ndarray:
    return np.array([math.nan if value is None else float(value) for value in values], dtype=float)


def _colors(report: EvaluationReport) -> dict[str, str]:
    """One colour per system, the same in every plot: the metric table's order, then the rest."""
    names = [*report.metrics, *report.exposure, *report.segments]
    return {name: f"C{index % 10}" for index, name in enumerate(dict.fromkeys(names))}


def lambda_plot(report: EvaluationReport) -> tuple[str, tuple[float, float] | None]:
    """The re-ranker's accuracy and diversity over lambda, and their trade-off.

    Args:
      report: Needs a non-empty `lambda_curve`; `chosen_lambda` (when set) is marked.

    Returns:
      The "plot-lambda-curve" `<figure>` HTML, and `(accuracy, diversity)` of the curve point
      nearest `report.chosen_lambda` (None when no lambda was chosen).
    """
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
    chosen = None
    if report.chosen_lambda is not None:
        label = f"chosen λ={report.chosen_lambda:g}"
        over_lambda.axvline(report.chosen_lambda, color="k", linestyle=":", label=label)
        at = int(np.argmin(np.abs(lambdas - report.chosen_lambda)))
        trade_off.plot(div[at], acc[at], "*", markersize=18, color="C3", label=label, zorder=3)
        over_lambda.legend(loc="lower left")
        trade_off.legend(loc="best")
        chosen = acc[at], div[at]
    return _img("plot-lambda-curve", figure), chosen


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


def exposure_plots(report: EvaluationReport) -> list[str]:
    """Lorenz and rank-frequency curves of each system's item exposure and of training
    popularity, side by side in one `<div class="row">`; empty when there is neither."""
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


def popularity_plot(report: EvaluationReport) -> list[str]:
    """Bars of each system's first `mean_popularity*` metric; empty when no system has one."""
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


def segments_plot(
    report: EvaluationReport,
    systems: Sequence[str],
    segments: Sequence[str],
    names: Sequence[str],
) -> str:
    """One panel per metric of `names` (at least one), grouped bars per segment and system.

    Args:
      report: Supplies `report.segments` (`{system: {segment: {metric: value}}}`).
      systems: The bar groups' systems, in legend order.
      segments: The x-axis segments.
      names: The metrics, one panel each, three panels per row.

    Returns:
      The "plot-segments" `<figure>` HTML.
    """
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
    return _img("plot-segments", figure)
