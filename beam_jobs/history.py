"""Per-event history and context features, computed without leakage.

For every event the user's last N items *strictly before* it (by timestamp) are attached, so a
model trained on the event never sees the event itself or the future; events sharing a
timestamp do not see each other. Context (hour, weekday) comes from the event's own timestamp.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from recstack import features

#: Internal key (never written to examples) of `(index, count)`: the event's 0-based place in
#: its user's time-ordered events, and the user's number of events. Leave-last-out splits by it.
POSITION = "_position"


def add_context(row: dict[str, Any]) -> dict[str, Any]:
    """Returns `row` with `hour` (0-23) and `weekday` (0 = Monday) of its UTC timestamp.

    Computed arithmetically (UTC has no leap seconds in epoch time; floor division keeps
    timestamps before 1970 right), several times faster than building a datetime per event.
    """
    timestamp = row[features.TIMESTAMP]
    hour = timestamp // 3600 % 24
    weekday = (timestamp // 86400 + features.EPOCH_WEEKDAY) % 7
    return {**row, features.HOUR: hour, features.WEEKDAY: weekday}


def _order(row: dict[str, Any]) -> tuple:
    return (row[features.TIMESTAMP], row[features.ITEM_ID], row[features.EVENT],
            row.get(features.VALUE, 0.0))  # fmt: skip


def histories(rows: Iterable[dict[str, Any]], length: int) -> Iterator[dict[str, Any]]:
    """Yields each of one user's events with the `length` latest earlier events attached.

    Args:
      rows: All events of one user, in any order.
      length: Maximum history length N.

    Yields:
      The events in time order, each with `history_item_ids` / `history_timestamps`: the items
      and times of the user's latest (at most `length`) events with a strictly smaller
      timestamp, oldest first; and `POSITION`.
    """
    ordered = sorted(rows, key=_order)
    past: deque[tuple[str, int]] = deque(maxlen=length)
    start = 0
    while start < len(ordered):
        timestamp = ordered[start][features.TIMESTAMP]
        end = start
        while end < len(ordered) and ordered[end][features.TIMESTAMP] == timestamp:
            end += 1
        item_ids = [item for item, _ in past]
        times = [t for _, t in past]
        for index in range(start, end):
            yield {**ordered[index], features.HISTORY_ITEM_IDS: item_ids,
                   features.HISTORY_TIMESTAMPS: times,
                   POSITION: (index, len(ordered))}  # fmt: skip
        past.extend((row[features.ITEM_ID], timestamp) for row in ordered[start:end])
        start = end
