"""Tests of the time split."""

import apache_beam as beam
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.split import SplitByTime, cutoff_from_max
from recstack import features

DAY = 86400
MAX = 1_700_000_000


def _row(timestamp):
    return {features.USER_ID: "u", features.ITEM_ID: "i", features.TIMESTAMP: timestamp}


def test_cutoff_is_the_first_integer_inside_the_eval_window():
    assert cutoff_from_max(MAX, 7) == MAX - 7 * DAY
    assert cutoff_from_max(MAX, 0.5) == MAX - DAY // 2
    # 1e-5 days = 0.864 s: the window starts at MAX - 0.864, so MAX - 0 is the first in it.
    assert cutoff_from_max(MAX, 1e-5) == MAX
    assert cutoff_from_max(None, 7) is None


def test_split_by_eval_days_puts_the_last_days_in_eval():
    timestamps = [MAX - 10 * DAY, MAX - 2 * DAY - 1, MAX - 2 * DAY, MAX - DAY, MAX]
    with test_pipeline.TestPipeline() as p:
        split = p | beam.Create([_row(t) for t in timestamps]) | SplitByTime(eval_days=2)
        assert_that(split.train, equal_to([_row(timestamps[0]), _row(timestamps[1])]), "Train")
        assert_that(split.eval, equal_to([_row(t) for t in timestamps[2:]]), "Eval")
        assert_that(split.split_timestamp, equal_to([MAX - 2 * DAY]), "Cutoff")


def test_split_timestamp_overrides_eval_days():
    timestamps = [100, 199, 200, 5000]
    with test_pipeline.TestPipeline() as p:
        rows = p | beam.Create([_row(t) for t in timestamps])
        split = rows | SplitByTime(eval_days=7, split_timestamp=200)
        assert_that(split.train, equal_to([_row(100), _row(199)]), "Train")
        assert_that(split.eval, equal_to([_row(200), _row(5000)]), "Eval")
        assert_that(split.split_timestamp, equal_to([200]), "Cutoff")


def test_no_rows_give_empty_splits_and_no_cutoff():
    with test_pipeline.TestPipeline() as p:
        split = p | beam.Create([]) | SplitByTime(eval_days=7)
        assert_that(split.train, equal_to([]), "Train")
        assert_that(split.eval, equal_to([]), "Eval")
        assert_that(split.split_timestamp, equal_to([None]), "Cutoff")
