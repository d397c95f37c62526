"""Tests of the train/eval/test splits: time cutoffs and per-user leave-last-out."""

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.config import IngestConfig
from beam_jobs.history import POSITION, histories
from beam_jobs.split import (
    EVAL_TAG,
    TEST_TAG,
    TRAIN_TAG,
    Cutoffs,
    MaxOrNoneFn,
    cutoff_from_max,
    split_by_time,
    split_leave_last_out,
    time_cutoffs,
)
from recstack import features

DAY = 86400
MAX = 1_700_000_000


def _row(timestamp, user="u"):
    return {
        features.USER_ID: user,
        features.ITEM_ID: "i",
        features.TIMESTAMP: timestamp,
        features.EVENT: "click",
    }


def test_cutoff_is_the_first_integer_inside_the_window():
    assert cutoff_from_max(MAX, 7) == MAX - 7 * DAY
    assert cutoff_from_max(MAX, 0.5) == MAX - DAY // 2
    # 1e-5 days = 0.864 s: the window starts at MAX - 0.864, so MAX - 0 is the first in it.
    assert cutoff_from_max(MAX, 1e-5) == MAX
    assert cutoff_from_max(None, 7) is None


def test_time_cutoffs_place_eval_before_test():
    assert time_cutoffs(MAX, eval_days=7) == Cutoffs(MAX - 7 * DAY, None)
    assert time_cutoffs(MAX, eval_days=7, test_days=2) == Cutoffs(MAX - 9 * DAY, MAX - 2 * DAY)
    assert time_cutoffs(MAX, 7, 2, split_timestamp=100) == Cutoffs(100, MAX - 2 * DAY)
    assert time_cutoffs(MAX, 1, 2, test_timestamp=5 * DAY) == Cutoffs(4 * DAY, 5 * DAY)
    assert time_cutoffs(MAX, 1, 0, 10, 20) == Cutoffs(10, 20)
    assert time_cutoffs(None, 7, 2) == Cutoffs(None, None)
    with pytest.raises(ValueError, match="after the test split's start"):
        time_cutoffs(MAX, 7, 2, split_timestamp=MAX)


def test_time_routing_uses_both_cutoffs():
    cutoffs = Cutoffs(200, 300)
    tags = [split_by_time(_row(t), cutoffs) for t in (100, 199, 200, 299, 300, 5000)]
    assert tags == [TRAIN_TAG, TRAIN_TAG, EVAL_TAG, EVAL_TAG, TEST_TAG, TEST_TAG]
    assert split_by_time(_row(10**9), Cutoffs(200, None)) == EVAL_TAG
    with pytest.raises(RuntimeError, match="no split timestamp"):
        split_by_time(_row(1), Cutoffs(None, None))


def test_leave_last_out_routing_holds_out_each_users_last_two_events():
    # u1: 4 events, u2: 3 events, u3: 2 events (too few: all train), u4: 1 event.
    events = {"u1": [5, 1, 9, 3], "u2": [7, 8, 6], "u3": [1, 2], "u4": [4]}
    routed = {TRAIN_TAG: [], EVAL_TAG: [], TEST_TAG: []}
    for user, times in events.items():
        for row in histories([_row(t, user) for t in times], length=2):
            routed[split_leave_last_out(row)].append((user, row[features.TIMESTAMP]))
    assert sorted(routed[TEST_TAG]) == [("u1", 9), ("u2", 8)]
    assert sorted(routed[EVAL_TAG]) == [("u1", 5), ("u2", 7)]
    assert sorted(routed[TRAIN_TAG]) == [
        ("u1", 1), ("u1", 3), ("u2", 6), ("u3", 1), ("u3", 2), ("u4", 4)
    ]  # fmt: skip


def test_the_maximum_of_nothing_is_none():
    with test_pipeline.TestPipeline() as p:
        got = p | beam.Create([]) | beam.CombineGlobally(MaxOrNoneFn())
        assert_that(got, equal_to([None]))


def test_position_counts_every_event_of_the_user_in_time_order():
    rows = [_row(t) for t in (30, 10, 20, 20)]
    positions = [(r[features.TIMESTAMP], r[POSITION]) for r in histories(rows, length=3)]
    assert positions == [(10, (0, 4)), (20, (1, 4)), (20, (2, 4)), (30, (3, 4))]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"split_method": "random"}, "split_method"),
        ({"test_days": -1}, "test_days"),
        ({"test_timestamp": "soon"}, "test_timestamp"),
        ({"split_timestamp": 300, "test_timestamp": 200}, "the eval split must come first"),
    ],
)
def test_bad_split_settings_are_rejected(overrides, message):
    with pytest.raises(ValueError, match=message):
        IngestConfig(**overrides)
