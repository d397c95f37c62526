"""Tests of the train/eval/test splits: time cutoffs and per-user leave-last-out."""

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.config import SPLIT_LEAVE_LAST_OUT, IngestConfig
from beam_jobs.history import POSITION, histories
from beam_jobs.split import Cutoffs, Split, cutoff_from_max, time_cutoffs
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


def test_split_by_eval_days_puts_the_last_days_in_eval_and_leaves_test_empty():
    timestamps = [MAX - 10 * DAY, MAX - 2 * DAY - 1, MAX - 2 * DAY, MAX - DAY, MAX]
    with test_pipeline.TestPipeline() as p:
        split = p | beam.Create([_row(t) for t in timestamps]) | Split(eval_days=2)
        assert_that(split.train, equal_to([_row(timestamps[0]), _row(timestamps[1])]), "Train")
        assert_that(split.eval, equal_to([_row(t) for t in timestamps[2:]]), "Eval")
        assert_that(split.test, equal_to([]), "Test")
        assert_that(split.cutoffs, equal_to([Cutoffs(MAX - 2 * DAY, None)]), "Cutoffs")


def test_split_with_a_test_window_takes_eval_from_the_days_before_it():
    timestamps = [MAX - 4 * DAY, MAX - 3 * DAY, MAX - DAY - 1, MAX - DAY, MAX]
    with test_pipeline.TestPipeline() as p:
        rows = p | beam.Create([_row(t) for t in timestamps])
        split = rows | Split(eval_days=2, test_days=1)
        assert_that(split.train, equal_to([_row(timestamps[0])]), "Train")
        assert_that(split.eval, equal_to([_row(t) for t in timestamps[1:3]]), "Eval")
        assert_that(split.test, equal_to([_row(t) for t in timestamps[3:]]), "Test")


def test_absolute_timestamps_override_the_day_counts():
    timestamps = [100, 199, 200, 299, 300, 5000]
    with test_pipeline.TestPipeline() as p:
        rows = p | beam.Create([_row(t) for t in timestamps])
        split = rows | Split(eval_days=7, test_days=1, split_timestamp=200, test_timestamp=300)
        assert_that(split.train, equal_to([_row(100), _row(199)]), "Train")
        assert_that(split.eval, equal_to([_row(200), _row(299)]), "Eval")
        assert_that(split.test, equal_to([_row(300), _row(5000)]), "Test")
        assert_that(split.cutoffs, equal_to([Cutoffs(200, 300)]), "Cutoffs")


def test_no_rows_give_empty_splits_and_no_cutoff():
    with test_pipeline.TestPipeline() as p:
        split = p | beam.Create([]) | Split(eval_days=7)
        assert_that(split.train, equal_to([]), "Train")
        assert_that(split.eval, equal_to([]), "Eval")
        assert_that(split.cutoffs, equal_to([Cutoffs(None, None)]), "Cutoffs")


def _key(row):
    return row[features.USER_ID], row[features.TIMESTAMP]


def test_leave_last_out_holds_out_each_users_last_two_events():
    # u1: 4 events, u2: 3 events, u3: 2 events (too few: all train), u4: 1 event.
    events = {"u1": [5, 1, 9, 3], "u2": [7, 8, 6], "u3": [1, 2], "u4": [4]}
    enriched = [
        row
        for user, times in events.items()
        for row in histories([_row(t, user) for t in times], length=2)
    ]
    expected_test = [("u1", 9), ("u2", 8)]
    expected_eval = [("u1", 5), ("u2", 7)]
    expected_train = [("u1", 1), ("u1", 3), ("u2", 6), ("u3", 1), ("u3", 2), ("u4", 4)]
    with test_pipeline.TestPipeline() as p:
        split = p | beam.Create(enriched) | Split(method=SPLIT_LEAVE_LAST_OUT)
        assert_that(split.train | "TrainKeys" >> beam.Map(_key), equal_to(expected_train), "Tr")
        assert_that(split.eval | "EvalKeys" >> beam.Map(_key), equal_to(expected_eval), "Ev")
        assert_that(split.test | "TestKeys" >> beam.Map(_key), equal_to(expected_test), "Te")
        assert_that(split.cutoffs, equal_to([Cutoffs(None, None)]), "Cutoffs")


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
