"""Resolving duplicate ids in the catalog and the users table deterministically."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from beam_jobs import dead_letters
from beam_jobs.parse import SourcedRow
from recstack import features


def _key_by(sourced: SourcedRow, key: str) -> tuple[str, SourcedRow]:
    return sourced.row[key], sourced


def _position(sourced: SourcedRow) -> tuple:
    line = sourced.line if sourced.line is not None else -1
    return sourced.file, line, sourced.raw


class KeepFirstFn(beam.DoFn):
    """Keeps one record per id and sends the others to the dead letters.

    Input is `(id, records)` from a GroupByKey. PCollections have no order, so "first" means
    first by `(file, line)`: the same input always keeps the same record, whatever the runner
    or sharding.
    """

    def __init__(self, key: str, source: str, table: str) -> None:
        """Args:
        key: The id field, e.g. `features.ITEM_ID`.
        source: Dead-letter source and metrics namespace, e.g. `dead_letters.SOURCE_CATALOG`.
        table: The table's name in messages, e.g. "catalog".
        """
        super().__init__()
        self._key = key
        self._source = source
        self._table = table
        self._duplicates = beam.metrics.Metrics.counter(source, f"dead_letter_duplicate_{key}")

    def process(self, element: tuple[str, Iterable[SourcedRow]]) -> Iterator[Any]:
        key, records = element
        kept, *others = sorted(records, key=_position)
        yield kept.row
        for other in others:
            self._duplicates.inc()
            reason = (
                f"duplicate {self._key} {key!r}: the {self._table} holds it more than once and "
                f"the record {kept.raw!r} from {kept.file} line {kept.line} was kept; keep one "
                f"line per {self._key}"
            )
            letter = dead_letters.rejected(self._source, other, reason)
            yield beam.pvalue.TaggedOutput(dead_letters.DEAD_LETTER_TAG, letter)


class DropDuplicates(beam.PTransform):
    """Keeps one record per id (see `KeepFirstFn`).

    Applied to a PCollection of `SourcedRow`s; returns a `dead_letters.CheckResult` whose rows
    are dicts with unique ids.
    """

    def __init__(self, key: str, source: str, table: str) -> None:
        """Args: as for `KeepFirstFn`."""
        super().__init__()
        self._key = key
        self._source = source
        self._table = table

    def expand(self, records: beam.PCollection) -> dead_letters.CheckResult:
        result = (
            records
            | "KeyById" >> beam.Map(_key_by, self._key)
            | "GroupById" >> beam.GroupByKey()
            | "KeepFirst"
            >> beam.ParDo(KeepFirstFn(self._key, self._source, self._table)).with_outputs(
                dead_letters.DEAD_LETTER_TAG, main="rows"
            )
        )
        return dead_letters.CheckResult(result.rows, result[dead_letters.DEAD_LETTER_TAG])


class DropDuplicateItems(DropDuplicates):
    """Keeps one catalog record per item id."""

    def __init__(self) -> None:
        super().__init__(features.ITEM_ID, dead_letters.SOURCE_CATALOG, "catalog")


class DropDuplicateUsers(DropDuplicates):
    """Keeps one users-table record per user id."""

    def __init__(self) -> None:
        super().__init__(features.USER_ID, dead_letters.SOURCE_USERS, "users table")
