"""The readable summary of one ingestion: stats.json rendered as tables.

Printed at the end of `recstack ingest` and written beside stats.json as `summary.txt`.
"""

from __future__ import annotations

import datetime
import io
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from recstack import features as F

#: Width of the rendered text (fits a terminal and a code review).
WIDTH = 100
_SPLITS = ("train", "eval", "test")


def _number(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 1000 else f"{value:,.1f}"
    return f"{value:,}"


def _time(value: int | None) -> str:
    if value is None:
        return "-"
    when = datetime.datetime.fromtimestamp(value, tz=datetime.UTC)
    return f"{value} ({when:%Y-%m-%d %H:%M:%S} UTC)"


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE, pad_edge=False)
    table.add_column(columns[0])
    for column in columns[1:]:
        table.add_column(column, justify="right")
    return table


def _rows_table(stats: dict[str, Any]) -> Table:
    table = _table("Rows", "", "count")
    for label, key in (
        ("interaction rows read", F.STAT_ROWS_IN),
        ("written", F.STAT_ROWS_WRITTEN),
        ("  train", F.STAT_TRAIN_ROWS),
        ("  eval", F.STAT_EVAL_ROWS),
        ("  test", F.STAT_TEST_ROWS),
        ("dead letters", F.STAT_DEAD_LETTERS),
        ("exact duplicates dropped", F.STAT_DUPLICATES_DROPPED),
        ("catalog items", F.STAT_CATALOG_ITEMS),
        ("catalog dead letters", F.STAT_CATALOG_DEAD_LETTERS),
        ("users table rows", F.STAT_USER_ROWS),
        ("users table dead letters", F.STAT_USER_DEAD_LETTERS),
    ):
        table.add_row(label, _number(stats.get(key)))
    return table


def _split_table(stats: dict[str, Any]) -> Table:
    table = _table("Split", "", "value")
    table.add_row("method", str(stats.get(F.STAT_SPLIT_METHOD, "-")))
    table.add_row("eval from", _time(stats.get(F.STAT_SPLIT_TIMESTAMP)))
    table.add_row("test from", _time(stats.get(F.STAT_TEST_SPLIT_TIMESTAMP)))
    return table


def _events_table(stats: dict[str, Any]) -> Table:
    per_split = stats.get(F.STAT_EVENTS_PER_SPLIT) or {}
    table = _table("Events per split", "event", *_SPLITS)
    events = sorted({event for counts in per_split.values() for event in counts})
    for event in events:
        table.add_row(event, *(_number(per_split.get(s, {}).get(event, 0)) for s in _SPLITS))
    return table


def _catalog_table(stats: dict[str, Any]) -> Table:
    table = _table("Users and items", "", "value")
    for label, key in (
        ("distinct users (all splits)", F.STAT_DISTINCT_USERS),
        ("distinct items (all splits)", F.STAT_DISTINCT_ITEMS),
        ("users in the train vocabulary", F.STAT_USERS),
        ("items in the train vocabulary", F.STAT_ITEMS),
        ("sparsity (1 - pairs / users x items)", F.STAT_SPARSITY),
        ("item popularity Gini", F.STAT_ITEM_GINI),
        ("cold catalog items (no train event)", F.STAT_COLD_ITEM_SHARE),
    ):
        table.add_row(label, _number(stats.get(key)))
    return table


def _activity_table(stats: dict[str, Any]) -> Table:
    summary = stats.get(F.STAT_EVENTS_PER_USER) or {}
    table = _table("Events per user", "", *summary)
    table.add_row("events", *(_number(value) for value in summary.values()))
    return table


def format_summary(stats: dict[str, Any]) -> str:
    """Returns `stats` (a stats.json dict) as plain-text tables, `WIDTH` columns wide."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=WIDTH, color_system=None, highlight=False)
    for table in (
        _rows_table(stats),
        _split_table(stats),
        _events_table(stats),
        _catalog_table(stats),
        _activity_table(stats),
    ):
        console.print(table)
        console.print()
    return buffer.getvalue()
