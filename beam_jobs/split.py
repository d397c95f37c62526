"""Splitting interactions into train, eval and test, so evaluation looks at the future.

Two methods (`ingest.split_method`):

- "time": global cutoffs. Events from the test cutoff on form the test split, events from the
  eval cutoff up to the test cutoff the eval split, earlier ones the train split. Cutoffs are
  absolute (`split_timestamp`, `test_timestamp`) or counted back from the latest event
  (`test_days`, then `eval_days` before that). Without a test split the test files are empty.
- "leave_last_out": per user, the latest event is the test event and the one before it the
  eval event (the SASRec/BERT4Rec protocol); users with fewer than `MIN_EVENTS_TO_HOLD_OUT`
  events stay wholly in train. Needs the position each event has in its user's history, which
  `beam_jobs.history` attaches as `history.POSITION`.

The routing functions run inside `beam_jobs.build.BuildShardFn`, where each user's events are
at hand; the cutoffs are computed in the pipeline (`MaxOrNoneFn`, `time_cutoffs`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, NamedTuple

import apache_beam as beam

from beam_jobs.config import SECONDS_PER_DAY
from beam_jobs.history import POSITION
from recstack import features

TRAIN_TAG = "train"
EVAL_TAG = "eval"
TEST_TAG = "test"

#: Events a user needs before leave-last-out holds any out (one train, one eval, one test).
MIN_EVENTS_TO_HOLD_OUT = 3


class Cutoffs(NamedTuple):
    """First timestamps of the eval and test splits (None: no such cutoff)."""

    eval: int | None
    test: int | None


def cutoff_from_max(max_timestamp: int | None, days: float) -> int | None:
    """Returns the smallest integer >= `max_timestamp - days * 86400`.

    Timestamps are integers, so `t >= max - days * 86400` holds exactly when `t >= cutoff`.
    Returns None when `max_timestamp` is None (no interactions).
    """
    if max_timestamp is None:
        return None
    return math.ceil(max_timestamp - days * SECONDS_PER_DAY)


def time_cutoffs(
    max_timestamp: int | None,
    eval_days: float,
    test_days: float = 0.0,
    split_timestamp: int | None = None,
    test_timestamp: int | None = None,
) -> Cutoffs:
    """Returns the eval and test cutoffs of a time split.

    Args:
      max_timestamp: Latest interaction; None when there are none (then both cutoffs are None,
        unless given absolutely).
      eval_days: Length of the eval window, which ends where the test window starts.
      test_days: Length of the test window at the end; 0 for no test split.
      split_timestamp: Absolute eval cutoff; overrides `eval_days`.
      test_timestamp: Absolute test cutoff; overrides `test_days`.

    Raises:
      ValueError: the eval cutoff falls after the test cutoff (the message gives both).
    """
    if test_timestamp is not None:
        test = test_timestamp
    elif test_days > 0:
        test = cutoff_from_max(max_timestamp, test_days)
    else:
        test = None
    if split_timestamp is not None:
        eval_ = split_timestamp
    elif test is not None:  # The eval window ends where the test window starts.
        eval_ = math.ceil(test - eval_days * SECONDS_PER_DAY)
    else:
        eval_ = cutoff_from_max(max_timestamp, eval_days)
    if eval_ is not None and test is not None and eval_ > test:
        raise ValueError(
            f"the eval split would start at {eval_}, after the test split's start {test}; set "
            "ingest.split_timestamp before ingest.test_timestamp (or use eval_days/test_days)"
        )
    return Cutoffs(eval_, test)


def _timestamp_of(row: dict[str, Any]) -> int:
    return row[features.TIMESTAMP]


class MaxOrNoneFn(beam.CombineFn):
    """Maximum of integers, None for an empty input (where `max` would fail)."""

    def create_accumulator(self) -> int | None:
        return None

    def add_input(self, accumulator: int | None, value: int) -> int:
        return value if accumulator is None else max(accumulator, value)

    def merge_accumulators(self, accumulators: Iterable[int | None]) -> int | None:
        present = [a for a in accumulators if a is not None]
        return max(present) if present else None

    def extract_output(self, accumulator: int | None) -> int | None:
        return accumulator


def split_by_time(row: dict[str, Any], cutoffs: Cutoffs) -> str:
    """Returns the tag of `row`'s split under the time cutoffs.

    Raises:
      RuntimeError: the eval cutoff is None although a row exists (a bug upstream).
    """
    if cutoffs.eval is None:
        raise RuntimeError(f"no split timestamp computed, yet a row arrived: {row!r}")
    timestamp = row[features.TIMESTAMP]
    if cutoffs.test is not None and timestamp >= cutoffs.test:
        return TEST_TAG
    return EVAL_TAG if timestamp >= cutoffs.eval else TRAIN_TAG


def split_leave_last_out(row: dict[str, Any]) -> str:
    """Returns the tag of `row` under leave-last-out: the user's last event is test, the one
    before eval, the rest train (all train for users with fewer than 3 events).

    Raises:
      KeyError: the row has no `history.POSITION` (history features were not attached).
    """
    index, count = row[POSITION]
    if count < MIN_EVENTS_TO_HOLD_OUT:
        return TRAIN_TAG
    if index == count - 1:
        return TEST_TAG
    return EVAL_TAG if index == count - 2 else TRAIN_TAG
