"""Resolving duplicate item ids in the catalog deterministically."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from beam_jobs import dead_letters
from beam_jobs.parse import SourcedRow
from recstack import features


def _key_by_item_id(sourced: SourcedRow) -> tuple[str, SourcedRow]:
    return sourced.row[features.ITEM_ID], sourced


def _position(sourced: SourcedRow) -> tuple:
    line = sourced.line if sourced.line is not None else -1
    return sourced.file, line, sourced.raw


class KeepFirstItemFn(beam.DoFn):
    """Keeps one record per item id and sends the others to the dead letters.

    Input is `(item_id, records)` from a GroupByKey. PCollections have no order, so "first"
    means first by `(file, line)`: the same input always keeps the same record, whatever the
    runner or sharding.
    """

    def __init__(self) -> None:
        super().__init__()
        self._duplicates = beam.metrics.Metrics.counter(
            dead_letters.SOURCE_CATALOG, "dead_letter_duplicate_item_id"
        )

    def process(self, element: tuple[str, Iterable[SourcedRow]]) -> Iterator[Any]:
        item_id, records = element
        kept, *others = sorted(records, key=_position)
        yield kept.row
        for other in others:
            self._duplicates.inc()
            reason = (
                f"duplicate {features.ITEM_ID} {item_id!r}: the catalog holds it more than once "
                f"and the record {kept.raw!r} from {kept.file} was kept; keep one line per item"
            )
            letter = dead_letters.rejected(dead_letters.SOURCE_CATALOG, other, reason)
            yield beam.pvalue.TaggedOutput(dead_letters.DEAD_LETTER_TAG, letter)


class DropDuplicateItems(beam.PTransform):
    """Keeps one catalog record per item id (see `KeepFirstItemFn`).

    Applied to a PCollection of catalog `SourcedRow`s; returns a `dead_letters.CheckResult`
    whose rows are item dicts with unique ids.
    """

    def expand(self, items: beam.PCollection) -> dead_letters.CheckResult:
        result = (
            items
            | "KeyByItemId" >> beam.Map(_key_by_item_id)
            | "GroupByItemId" >> beam.GroupByKey()
            | "KeepFirst"
            >> beam.ParDo(KeepFirstItemFn()).with_outputs(dead_letters.DEAD_LETTER_TAG, main="rows")
        )
        return dead_letters.CheckResult(result.rows, result[dead_letters.DEAD_LETTER_TAG])
