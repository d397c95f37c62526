"""Dropping exact duplicate events (logs often deliver the same event twice)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics

from recstack import features

DUPLICATE_TAG = "duplicates"
#: Fields that make two events the same event.
EVENT_KEY = (features.USER_ID, features.ITEM_ID, features.TIMESTAMP, features.EVENT,
             features.VALUE)  # fmt: skip


class DedupeResult(NamedTuple):
    """Outputs of `DropDuplicateEvents`.

    Attributes:
      rows: One interaction dict per distinct event.
      duplicates: The dropped copies (counted into stats.json's `duplicates_dropped`).
    """

    rows: beam.PCollection
    duplicates: beam.PCollection


def event_key(row: dict[str, Any]) -> tuple:
    """The identity of an event: user, item, timestamp, event type and value."""
    return tuple(row.get(name) for name in EVENT_KEY)


class KeepOneFn(beam.DoFn):
    """Emits one event of each group of identical events and tags the rest as duplicates."""

    def __init__(self) -> None:
        self._dropped = Metrics.counter("interactions", "duplicates_dropped")

    def process(self, element: tuple[tuple, Iterable[dict[str, Any]]]) -> Iterator[Any]:
        _, rows = element
        iterator = iter(rows)
        yield next(iterator)
        for duplicate in iterator:
            self._dropped.inc()
            yield beam.pvalue.TaggedOutput(DUPLICATE_TAG, duplicate)


class DropDuplicateEvents(beam.PTransform):
    """Keeps one copy of every exact duplicate interaction.

    Applied to a PCollection of interaction dicts; returns a `DedupeResult`. Copies are
    identical in every contract field, so which one is kept does not change the output.
    """

    def expand(self, rows: beam.PCollection) -> DedupeResult:
        result = (
            rows
            | "KeyByEvent" >> beam.Map(lambda row: (event_key(row), row))
            | "GroupIdentical" >> beam.GroupByKey()
            | "KeepOne" >> beam.ParDo(KeepOneFn()).with_outputs(DUPLICATE_TAG, main="rows")
        )
        return DedupeResult(result.rows, result[DUPLICATE_TAG])
