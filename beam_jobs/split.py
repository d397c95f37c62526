"""Splitting interactions by time into train and eval, so evaluation looks at the future."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam

from beam_jobs.config import SECONDS_PER_DAY
from recstack import features

TRAIN_TAG = "train"
EVAL_TAG = "eval"


class SplitResult(NamedTuple):
    """Outputs of `SplitByTime`.

    Attributes:
      train: PCollection of interaction dicts with `timestamp < split_timestamp`.
      eval: PCollection of interaction dicts with `timestamp >= split_timestamp`.
      split_timestamp: PCollection of one element: the cutoff in epoch seconds, or None when
        there were no interactions to split.
    """

    train: beam.PCollection
    eval: beam.PCollection
    split_timestamp: beam.PCollection


def cutoff_from_max(max_timestamp: int | None, eval_days: float) -> int | None:
    """Returns the first eval timestamp: the smallest integer >= max - eval_days * 86400.

    Timestamps are integers, so `t >= max - eval_days * 86400` holds exactly when
    `t >= cutoff`. Returns None when `max_timestamp` is None (no interactions).
    """
    if max_timestamp is None:
        return None
    return math.ceil(max_timestamp - eval_days * SECONDS_PER_DAY)


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


class SplitByTimeFn(beam.DoFn):
    """Routes each interaction to the `TRAIN_TAG` or `EVAL_TAG` output by the cutoff.

    The cutoff arrives as a singleton side input (`split_timestamp` in `process`).
    """

    def process(self, row: dict[str, Any], split_timestamp: int | None) -> Iterator[Any]:
        if split_timestamp is None:
            # The cutoff is None only when there are no rows, so reaching here is a bug.
            raise RuntimeError(f"no split timestamp computed, yet a row arrived: {row!r}")
        tag = EVAL_TAG if row[features.TIMESTAMP] >= split_timestamp else TRAIN_TAG
        yield beam.pvalue.TaggedOutput(tag, row)


class SplitByTime(beam.PTransform):
    """Splits interactions into train (before the cutoff) and eval (from the cutoff on).

    The cutoff is `split_timestamp` when given, else `eval_days` before the latest interaction
    (computed in the pipeline and passed to the split as a side input). Applied to a
    PCollection of interaction dicts; returns a `SplitResult`.
    """

    def __init__(self, eval_days: float, split_timestamp: int | None = None) -> None:
        """Args:
        eval_days: Length of the eval window in days, counted back from the latest interaction.
        split_timestamp: Absolute cutoff in epoch seconds; overrides `eval_days` when set.
        """
        super().__init__()
        self._eval_days = eval_days
        self._split_timestamp = split_timestamp

    def expand(self, rows: beam.PCollection) -> SplitResult:
        if self._split_timestamp is not None:
            cutoff = rows.pipeline | "FixedCutoff" >> beam.Create([self._split_timestamp])
        else:
            cutoff = (
                rows
                | "Timestamps" >> beam.Map(_timestamp_of)
                | "MaxTimestamp" >> beam.CombineGlobally(MaxOrNoneFn())
                | "CutoffFromMax" >> beam.Map(cutoff_from_max, self._eval_days)
            )
        split = rows | "Route" >> beam.ParDo(
            SplitByTimeFn(), split_timestamp=beam.pvalue.AsSingleton(cutoff)
        ).with_outputs(TRAIN_TAG, EVAL_TAG)
        return SplitResult(split[TRAIN_TAG], split[EVAL_TAG], cutoff)
