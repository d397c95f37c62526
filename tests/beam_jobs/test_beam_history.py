"""History and context features: strictly earlier events only, bounded length, ties excluded."""

import random

from beam_jobs.history import add_context, histories
from recstack import features as F


def _row(user, item, ts):
    return {F.USER_ID: user, F.ITEM_ID: item, F.TIMESTAMP: ts, F.EVENT: "view", F.VALUE: 0.0}


def test_history_is_strictly_earlier_and_same_timestamp_events_do_not_see_each_other():
    rows = [_row("u", "c", 30), _row("u", "a", 10), _row("u", "b", 20), _row("u", "d", 20)]
    got = {
        r[F.ITEM_ID]: (r[F.HISTORY_ITEM_IDS], r[F.HISTORY_TIMESTAMPS]) for r in histories(rows, 5)
    }
    assert got == {
        "a": ([], []),
        "b": (["a"], [10]),
        "d": (["a"], [10]),
        "c": (["a", "b", "d"], [10, 20, 20]),
    }


def test_history_keeps_the_latest_n():
    rows = [_row("u", f"i{t}", t) for t in range(6)]
    last = [r for r in histories(rows, 2)][-1]
    assert last[F.HISTORY_ITEM_IDS] == ["i3", "i4"] and last[F.HISTORY_TIMESTAMPS] == [3, 4]


def test_no_leakage_on_random_logs():
    rng = random.Random(0)
    rows = [_row("u", f"i{rng.randrange(30)}", rng.randrange(50)) for _ in range(300)]
    for row in histories(rows, 1000):
        assert all(t < row[F.TIMESTAMP] for t in row[F.HISTORY_TIMESTAMPS])
        expected = sorted(r[F.TIMESTAMP] for r in rows if r[F.TIMESTAMP] < row[F.TIMESTAMP])
        assert row[F.HISTORY_TIMESTAMPS] == expected


def test_context_from_utc_timestamp():
    # 2023-11-14 22:13:20 UTC was a Tuesday.
    assert {k: add_context(_row("u", "i", 1_700_000_000))[k] for k in (F.HOUR, F.WEEKDAY)} == {
        F.HOUR: 22,
        F.WEEKDAY: 1,
    }


def test_context_matches_datetime_for_any_timestamp():
    import datetime

    rng = random.Random(5)
    stamps = [0, -1, -86400, 86399, 951782400, 4102444799] + [
        rng.randint(-2_000_000_000, 4_000_000_000) for _ in range(2000)
    ]
    for ts in stamps:
        when = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC)
        row = add_context(_row("u", "i", ts))
        assert (row[F.HOUR], row[F.WEEKDAY]) == (when.hour, when.weekday()), ts
