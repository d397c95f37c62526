"""The evaluation report as one self-contained HTML page: tables and matplotlib plots.

Everything lives in the file: the CSS is inline and every plot is a base64 PNG data URI drawn
with matplotlib's Agg renderer (`evaluation.report_plots`), so the page can be mailed, attached
to a CI run or opened offline. A Content-Security-Policy forbids any other source, so a stray
external reference fails visibly instead of loading from the network. Sections without data are
left out; `PLOT_IDS` lists the plots.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from evaluation.report import (
    MODEL,
    EvaluationReport,
    format_lift,
    format_value,
    is_lower_better,
    metric_lift,
    metric_names,
)
from evaluation.report_plots import PLOT_IDS as PLOT_IDS
from evaluation.report_plots import (
    exposure_plots,
    lambda_plot,
    popularity_plot,
    segments_plot,
)

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


def _lambda_section(report: EvaluationReport) -> str:
    if not report.lambda_curve:
        return ""
    accuracy, diversity = report.lambda_metrics
    plot, chosen = lambda_plot(report)
    text = "No lambda was chosen."
    if chosen is not None:
        acc, div = chosen
        text = f"Chosen lambda: <b>{report.chosen_lambda:g}</b> ({_esc(accuracy)} "
        text += f"{format_value(acc)}, {_esc(diversity)} {format_value(div)})."
    return _section("lambda", "Accuracy-diversity curve", plot, f"<p>{text}</p>")


def _exposure_section(report: EvaluationReport) -> str:
    parts = exposure_plots(report) + popularity_plot(report)
    return _section("exposure", "Coverage and popularity", *parts) if parts else ""


def _segments_section(report: EvaluationReport) -> str:
    systems = list(report.segments)
    segments = list(dict.fromkeys(s for by in report.segments.values() for s in by))
    names = metric_names(t for by in report.segments.values() for t in by.values())
    if not names:
        return ""
    table = [
        (
            f"{segment}: {name}",
            name,
            {s: report.segments[s].get(segment, {}).get(name) for s in systems},
        )
        for segment in segments
        for name in names
    ]
    plot = segments_plot(report, systems, segments, names)
    return _section("segments", "Segments", plot, _table(table, systems))
