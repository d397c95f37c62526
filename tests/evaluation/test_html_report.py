"""The HTML report: embedded PNG plots, tables, no outside resources, and a headless render.

The render test needs a Chromium. It looks, in order, at $RECSTACK_CHROMIUM, at Chromium
binaries on PATH (Debian: `apt-get install --no-install-recommends chromium-headless-shell`, or
`chromium`), at browsers Playwright installed, and at PyQt6-WebEngine (Chromium inside Qt,
installable with pip); without any it skips.
"""

import base64
import glob
import html.parser
import importlib.util
import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from evaluation.html_report import PLOT_IDS, render_html, write_html
from evaluation.report import EvaluationReport

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM_NAMES = (
    "chromium-headless-shell",
    "chrome-headless-shell",
    "chromium",
    "chromium-browser",
    "google-chrome-stable",
    "google-chrome",
)
PLAYWRIGHT_BROWSERS = (
    "~/.cache/ms-playwright/chromium_headless_shell-*/chrome-headless-shell-linux64/"
    "chrome-headless-shell",
    "~/.cache/ms-playwright/chromium-*/chrome-linux*/chrome",
)


def _report(**overrides) -> EvaluationReport:
    rng = np.random.default_rng(7)
    systems = ("model", "popularity", "itemknn")
    fields = dict(
        meta={"split": "test", "ks": [10], "command": "recstack evaluate <data>"},
        metrics={
            "model": {"recall@10": 0.3, "gini@10": 0.5, "mean_popularity@10": 120.0},
            "popularity": {"recall@10": 0.1, "gini@10": 0.9, "mean_popularity@10": 900.0},
            "itemknn": {"recall@10": 0.6, "gini@10": 0.25, "mean_popularity@10": 300.0},
        },
        lambda_curve=[
            {"lambda": lam, "ndcg@10": 0.1 - 0.04 * lam, "ild_categories@10": 0.3 + 0.4 * lam}
            for lam in (0.0, 0.25, 0.5, 0.75, 1.0)
        ],
        lambda_metrics=("ndcg@10", "ild_categories@10"),
        chosen_lambda=0.5,
        exposure={
            "model": rng.poisson(4.0, 300).tolist(),
            "popularity": [0] * 290 + [100] * 10,
            "itemknn": rng.zipf(2.0, 300).tolist(),
        },
        training_popularity=rng.zipf(1.6, 300).tolist(),
        segments={
            system: {
                segment: {"recall@10": rng.random(), "ndcg@10": rng.random()}
                for segment in ("new", "light", "heavy", "head", "torso", "tail")
            }
            for system in systems
        },
        cold_start={"text": {"recall@10": 0.2}, "id_only": {"recall@10": 0.0}},
        debiasing={"logq": {"ips_recall@10": 0.2}, "no_logq": {"ips_recall@10": 0.1}},
    )
    return EvaluationReport(**(fields | overrides))


class _Page(html.parser.HTMLParser):
    """Every tag's attributes, the section ids and, per section, its tables' cells."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.tables: dict[str, list[list[list[tuple[str, str]]]]] = {}
        self.section = ""
        self.cell: list | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self.section = attrs["id"]
            self.tables[self.section] = []
        elif tag == "table":
            self.tables.setdefault(self.section, []).append([])
        elif tag == "tr":
            self.tables[self.section][-1].append([])
        elif tag in ("td", "th"):
            self.cell = [attrs.get("class") or "", ""]

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.tables[self.section][-1][-1].append((self.cell[0], self.cell[1].strip()))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1] += data

    def attrs_of(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.tags if name == tag]

    def sections(self) -> list[str]:
        return [attrs["id"] for attrs in self.attrs_of("section")]


@pytest.fixture(scope="module")
def full_page() -> str:
    """The page of a report with every section (rendered once: the plots take a second)."""
    return render_html(_report())


def test_every_plot_is_an_embedded_png_with_its_id_and_alt_text(full_page):
    images = {attrs["id"]: attrs for attrs in _Page(full_page).attrs_of("img")}
    assert list(images) == list(PLOT_IDS)
    for plot_id, attrs in images.items():
        assert attrs["alt"] == PLOT_IDS[plot_id]
        prefix, data = attrs["src"].split(",", 1)
        assert prefix == "data:image/png;base64"
        png = base64.b64decode(data, validate=True)
        assert png.startswith(PNG_SIGNATURE)
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG"
        assert image.width >= 400 and image.height >= 300, (plot_id, image.size)
        colors = image.convert("RGB").getcolors(maxcolors=image.width * image.height)
        assert len(colors) > 20, f"{plot_id} looks blank"


def test_the_page_loads_nothing_from_outside(full_page):
    page = _Page(full_page)
    for tag, attrs in page.tags:
        assert tag not in ("link", "iframe", "object", "embed"), tag
        for name in ("src", "href"):
            assert attrs.get(name, "data:").startswith("data:"), (tag, attrs.get(name)[:60])
    [policy] = [
        a for a in page.attrs_of("meta") if a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert "default-src 'none'" in policy["content"]
    assert "url(" not in full_page and "@import" not in full_page


def test_the_metric_table_highlights_the_best_and_shows_lifts(full_page):
    [table] = _Page(full_page).tables["metrics"]
    header, *rows = table
    assert [text for _, text in header] == ["", "model", "popularity", "itemknn"]
    by_metric = {row[0][1]: row[1:] for row in rows}
    assert by_metric["recall@10"] == [
        ("", "0.3"),
        ("", "0.1 (3.00x)"),
        ("best", "0.6 (0.50x)"),
    ]
    # Lower is better: the smallest gini and mean popularity win.
    assert [css for css, _ in by_metric["gini@10 ↓"]] == ["", "", "best"]
    assert by_metric["mean_popularity@10 ↓"] == [
        ("best", "120"),
        ("", "900 (7.50x)"),
        ("", "300 (2.50x)"),
    ]


def test_segments_cold_start_and_debiasing_have_tables(full_page):
    tables = _Page(full_page).tables
    [segments] = tables["segments"]
    assert len(segments) == 1 + 6 * 2  # header, then a row per segment and metric
    assert segments[1][0][1] == "new: recall@10"
    [cold] = tables["cold-start"]
    assert cold == [
        [("", ""), ("", "text"), ("", "id_only")],
        [("", "recall@10"), ("best", "0.2"), ("", "0")],
    ]
    [debiasing] = tables["debiasing"]
    assert debiasing[1] == [("", "ips_recall@10"), ("best", "0.2"), ("", "0.1")]


def test_sections_without_data_are_left_out():
    bare = EvaluationReport(meta={}, metrics={"model": {"recall@10": 0.1}})
    page = _Page(render_html(bare))
    assert page.sections() == ["metrics"]
    assert page.attrs_of("img") == []

    no_popularity_metric = _report(metrics={"model": {"recall@10": 0.1}}, segments={})
    images = [attrs["id"] for attrs in _Page(render_html(no_popularity_metric)).attrs_of("img")]
    assert images == ["plot-lambda-curve", "plot-exposure-lorenz", "plot-exposure-rank"]


def test_the_chosen_lambda_is_named_with_its_metrics(full_page):
    assert "Chosen lambda: <b>0.5</b> (ndcg@10 0.08, ild_categories@10 0.5)" in full_page
    no_choice = _report(chosen_lambda=None, exposure={}, training_popularity=[], segments={})
    assert "No lambda was chosen." in render_html(no_choice)


def test_text_from_the_report_is_escaped():
    bare = EvaluationReport(meta={"command": "<script>alert(1)</script>"}, metrics={})
    text = render_html(bare)
    assert _Page(text).sections() == []
    assert "<script>alert(1)" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_write_html_creates_the_folder_and_returns_the_path(tmp_path, full_page):
    path = write_html(_report(), str(tmp_path / "eval" / "report.html"))
    assert path == str(tmp_path / "eval" / "report.html")
    assert open(path, encoding="utf-8").read() == full_page


def _find_chromium() -> str | None:
    explicit = os.environ.get("RECSTACK_CHROMIUM")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            pytest.fail(f"RECSTACK_CHROMIUM={explicit!r} is not an executable Chromium binary")
        return explicit
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    for pattern in PLAYWRIGHT_BROWSERS:
        if found := sorted(glob.glob(os.path.expanduser(pattern))):
            return found[-1]
    return None


def _has_qt_webengine() -> bool:
    return bool(importlib.util.find_spec("PyQt6")) and bool(
        importlib.util.find_spec("PyQt6.QtWebEngineWidgets")
    )


# Loads the page in Qt's Chromium (offscreen) and prints the DOM once the load event has run.
_QT_DUMP_DOM = """
import sys
from PyQt6.QtCore import QTimer, QUrl
from PyQt6.QtWidgets import QApplication
from PyQt6.QtWebEngineWidgets import QWebEngineView
app = QApplication(sys.argv[:1])
view = QWebEngineView()
view.loadFinished.connect(lambda ok: view.page().runJavaScript(
    "document.documentElement.outerHTML", lambda dom: (print(dom), app.quit())))
view.load(QUrl.fromLocalFile(sys.argv[1]))
QTimer.singleShot(60000, lambda: app.exit(1))
sys.exit(app.exec())
"""


def _dump_dom(page: str, profile: str) -> str:
    """The DOM of `page` after the load event, from a headless Chromium (or skips)."""
    binary = _find_chromium()
    if binary:
        command = [binary, "--headless", "--no-sandbox", "--disable-gpu"]
        command += ["--disable-dev-shm-usage", f"--user-data-dir={profile}"]
        command += ["--virtual-time-budget=10000", "--dump-dom", f"file://{page}"]
        env = None
    elif _has_qt_webengine():
        command = [sys.executable, "-c", _QT_DUMP_DOM, page]
        env = os.environ | {
            "QT_QPA_PLATFORM": "offscreen",
            "QTWEBENGINE_CHROMIUM_FLAGS": "--no-sandbox --disable-gpu",
        }
    else:
        pytest.skip(
            "no headless Chromium: install Debian's chromium-headless-shell (apt-get install "
            "--no-install-recommends chromium-headless-shell), set RECSTACK_CHROMIUM to a "
            "Chromium binary, or pip install PyQt6-WebEngine"
        )
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert result.returncode == 0, f"{command[0]} failed: {result.stderr[-2000:]}"
    return result.stdout


def test_headless_chromium_renders_every_plot(tmp_path, full_page):
    page = tmp_path / "report.html"
    page.write_text(full_page, encoding="utf-8")
    dom = _dump_dom(str(page), str(tmp_path / "profile"))
    rendered = _Page(dom)
    [body] = rendered.attrs_of("body")
    # Set by the page's script on load: images whose PNG decoded (naturalWidth > 0) / all.
    assert body.get("data-images-loaded") == f"{len(PLOT_IDS)}/{len(PLOT_IDS)}"
    assert [attrs["id"] for attrs in rendered.attrs_of("img")] == list(PLOT_IDS)
