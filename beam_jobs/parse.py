"""Reading and validating the raw inputs: interactions, item catalog and users table.

`ParseInteractions`, `ParseCatalog` and `ParseUsers` read every file matching a pattern (local
or `gs://`) in JSON Lines, CSV or Parquet, plain or gzip-compressed (see `beam_jobs.readers`),
rename the
columns of a `ColumnMapping` to the contract's names, and validate each record against the data
contract (see `beam_jobs.fields`). Valid rows leave as `SourcedRow`s, which keep the file, line
number and original text so later steps (unknown items, duplicates) can still emit complete dead
letters; invalid rows leave as dead letters carrying file, line number, raw text and reason.
Each outcome is counted with a Beam metrics counter in the namespace of its source
("interactions", "catalog" or "users").
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam

from beam_jobs import dead_letters, fields, readers
from beam_jobs.columns import ColumnMapping
from recstack import features

#: Tag of the main output of `ValidateRecordFn`.
ROWS_TAG = "rows"
#: Key of a dead letter's line number (re-exported from `dead_letters`).
LINE_KEY = dead_letters.LINE_KEY


class SourcedRow(NamedTuple):
    """A validated row with the line it came from.

    Attributes:
      file: Path of the input file.
      raw: The input line, decoded, without its line break (see `readers.SourceRecord.raw`).
      row: The validated row: a dict keyed by the contract's feature names.
      line: 1-based line number of `raw` in `file` (Parquet: row number); None when unknown.
    """

    file: str
    raw: str
    row: dict[str, Any]
    line: int | None = None


#: Records per batch of `ParseInteractions` (see `readers.ReadRecordsFn`).
INTERACTION_BATCH_SIZE = 1024


class ParseResult(NamedTuple):
    """Outputs of `ParseInteractions`, `ParseCatalog` and `ParseUsers`.

    Attributes:
      rows: PCollection of `SourcedRow`, one per valid record; for a batched parse
        (`ParseInteractions`), of lists of them.
      dead_letters: PCollection of dead-letter dicts, one per invalid record, each with the
        keys of `dead_letters.dead_letter` plus `LINE_KEY`.
      lines: PCollection of ints, records read per element read (1 each, or a batch's size;
        blank lines and the CSV header excluded); their sum is the number of rows read, which
        must equal rows kept plus dead letters.
    """

    rows: beam.PCollection
    dead_letters: beam.PCollection
    lines: beam.PCollection


def parse_interaction(record: dict[str, Any]) -> dict[str, Any]:
    """Validates one decoded interaction line and returns its row.

    Returns:
      Dict with `features.INTERACTION_FEATURES` keys: user_id, item_id and event as str,
      timestamp as int epoch seconds, value as float (0.0 when absent).

    Raises:
      fields.FieldError: a field violates the contract; the message names field and value.
    """
    return {
        features.USER_ID: fields.parse_id(record, features.USER_ID),
        features.ITEM_ID: fields.parse_id(record, features.ITEM_ID),
        features.TIMESTAMP: fields.parse_timestamp(record),
        features.EVENT: fields.parse_nonempty_string(record, features.EVENT),
        features.VALUE: fields.parse_value(record),
    }


def parse_user(record: dict[str, Any], attributes: tuple[str, ...]) -> dict[str, Any]:
    """Validates one decoded users-table line and returns its row.

    Args:
      record: The decoded line, columns renamed to contract names.
      attributes: Attribute columns to keep (`ingest.user_attributes`); others are ignored.

    Returns:
      Dict with `user_id` and each attribute as a string (see `fields.parse_attribute`).

    Raises:
      fields.FieldError: a field violates the contract; the message names field and value.
    """
    row = {features.USER_ID: fields.parse_id(record, features.USER_ID)}
    for name in attributes:
        row[name] = fields.parse_attribute(record, name)
    return row


def parse_item(record: dict[str, Any]) -> dict[str, Any]:
    """Validates one decoded catalog line and returns its row.

    Returns:
      Dict with `features.ITEM_FEATURES` keys: item_id, title and description as str (text
      defaults to ""), categories as a list of str.

    Raises:
      fields.FieldError: a field violates the contract; the message names field and value.
    """
    return {
        features.ITEM_ID: fields.parse_id(record, features.ITEM_ID),
        features.TITLE: fields.parse_optional_string(record, features.TITLE),
        features.DESCRIPTION: fields.parse_optional_string(record, features.DESCRIPTION),
        features.CATEGORIES: fields.parse_categories(record),
    }


class ValidateRecordFn(beam.DoFn):
    """Validates `readers.SourceRecord`s into `SourcedRow`s; bad ones go to the dead letters.

    The main output is tagged `ROWS_TAG`, the dead letters `dead_letters.DEAD_LETTER_TAG`.
    A record is rejected when the reader could not decode it (its `error`, already counted by
    the reader) or when `parse_record` raises `fields.FieldError` on it after renaming.
    """

    def __init__(
        self,
        source: str,
        parse_record: Callable[[dict[str, Any]], dict[str, Any]],
        columns: ColumnMapping | None = None,
        batched: bool = False,
    ) -> None:
        """Args:
        source: `dead_letters.SOURCE_INTERACTIONS` or `SOURCE_CATALOG`; also the metrics
          namespace.
        parse_record: Module-level function validating one decoded record (it is pickled to
          the workers), e.g. `parse_interaction`.
        columns: Renames source columns to contract names before validation; None renames
          nothing.
        batched: Elements are lists of records, and valid rows leave as lists (never empty).
        """
        super().__init__()
        self._source = source
        self._parse_record = parse_record
        self._columns = columns or ColumnMapping()
        self._batched = batched
        self._parsed = beam.metrics.Metrics.counter(source, "parsed")
        self._bad_field = beam.metrics.Metrics.counter(source, "dead_letter_invalid_field")

    def process(self, element: Any) -> Iterator[Any]:
        rows = readers.RecordBatch()
        bad_fields = 0
        for record in element if self._batched else (element,):
            if record.record is None:
                yield self._reject(record, record.error)
                continue
            try:
                row = self._parse_record(self._columns.apply(record.record))
            except fields.FieldError as e:
                bad_fields += 1
                yield self._reject(record, str(e))
                continue
            rows.append(SourcedRow(record.file, record.raw, row, record.line))
        if bad_fields:
            self._bad_field.inc(bad_fields)
        if rows:
            self._parsed.inc(len(rows))
            if self._batched:
                yield rows
            else:
                yield from rows

    def _reject(self, element: readers.SourceRecord, reason: str) -> beam.pvalue.TaggedOutput:
        letter = dead_letters.dead_letter(
            self._source, element.file, element.line, element.raw, reason
        )
        return beam.pvalue.TaggedOutput(dead_letters.DEAD_LETTER_TAG, letter)


class _ParseRecords(beam.PTransform):
    """Reads the files matching a pattern and validates each record with `parse_record`."""

    def __init__(
        self,
        file_pattern: str,
        source: str,
        parse_record: Callable[[dict[str, Any]], dict[str, Any]],
        input_format: str,
        columns: ColumnMapping | None,
        contract: tuple[features.Feature, ...],
        batch_size: int = 0,
    ) -> None:
        super().__init__()
        readers.check_format(input_format)
        columns = columns or ColumnMapping()
        columns.check_targets([feature.name for feature in contract], _TABLES[source])
        self._file_pattern = file_pattern
        self._source = source
        self._parse_record = parse_record
        self._input_format = input_format
        self._columns = columns
        self._batch_size = batch_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> ParseResult:
        batched = self._batch_size > 0
        records = pbegin | "ReadRecords" >> readers.ReadRecords(
            self._file_pattern, self._input_format, self._source, self._batch_size
        )
        parsed = records | "ValidateRecords" >> beam.ParDo(
            ValidateRecordFn(self._source, self._parse_record, self._columns, batched)
        ).with_outputs(dead_letters.DEAD_LETTER_TAG, main=ROWS_TAG)
        lines = records | "CountLines" >> beam.Map(len if batched else _one)
        return ParseResult(parsed[ROWS_TAG], parsed[dead_letters.DEAD_LETTER_TAG], lines)


def _one(_: Any) -> int:
    return 1


_TABLES = {
    dead_letters.SOURCE_INTERACTIONS: "interaction",
    dead_letters.SOURCE_CATALOG: "item",
    dead_letters.SOURCE_USERS: "user",
}


class ParseInteractions(_ParseRecords):
    """Reads and validates interactions (see `parse_interaction`).

    Applied to the pipeline; returns a batched `ParseResult`: its rows are lists of up to
    `INTERACTION_BATCH_SIZE` `SourcedRow`s holding interaction dicts, since logs are large and
    every later step then pays its per-element overhead once per batch.
    """

    def __init__(
        self,
        file_pattern: str,
        input_format: str = readers.FORMAT_JSONL,
        columns: ColumnMapping | None = None,
    ) -> None:
        """Args:
        file_pattern: File path or glob, local or `gs://...`.
        input_format: "jsonl" (default), "csv", "parquet", or "auto" to pick each file's
          format from its extension (`.jsonl`, `.csv`, `.parquet`, each optionally `.gz`).
        columns: Source column names of interaction columns; None reads the contract's names.

        Raises:
          ValueError: unknown `input_format`, or `columns` maps a non-interaction column.
        """
        super().__init__(
            file_pattern,
            dead_letters.SOURCE_INTERACTIONS,
            parse_interaction,
            input_format,
            columns,
            features.INTERACTION_FEATURES,
            INTERACTION_BATCH_SIZE,
        )


class ParseCatalog(_ParseRecords):
    """Reads and validates the item catalog (see `parse_item`).

    Applied to the pipeline; returns a `ParseResult` whose rows hold item dicts. Duplicate ids
    are left in; `beam_jobs.dedupe.DropDuplicateItems` resolves them.
    """

    def __init__(
        self,
        file_pattern: str,
        input_format: str = readers.FORMAT_JSONL,
        columns: ColumnMapping | None = None,
    ) -> None:
        """Args:
        file_pattern: File path or glob, local or `gs://...`.
        input_format: "jsonl" (default), "csv", "parquet", or "auto" to pick each file's
          format from its extension (`.jsonl`, `.csv`, `.parquet`, each optionally `.gz`).
        columns: Source column names of item columns; None reads the contract's names.

        Raises:
          ValueError: unknown `input_format`, or `columns` maps a non-item column.
        """
        super().__init__(
            file_pattern,
            dead_letters.SOURCE_CATALOG,
            parse_item,
            input_format,
            columns,
            features.ITEM_FEATURES,
        )


class ParseUsers(_ParseRecords):
    """Reads and validates the optional users table (see `parse_user`).

    Applied to the pipeline; returns a `ParseResult` whose rows hold user dicts. Duplicate ids
    are left in; `beam_jobs.dedupe.DropDuplicateUsers` resolves them.
    """

    def __init__(
        self,
        file_pattern: str,
        attributes: tuple[str, ...],
        input_format: str = readers.FORMAT_JSONL,
        columns: ColumnMapping | None = None,
    ) -> None:
        """Args:
        file_pattern: File path or glob, local or `gs://...`.
        attributes: Attribute columns to keep, e.g. ("country", "age_band").
        input_format: As for `ParseInteractions`.
        columns: Source column names of user columns; None reads the contract's names.

        Raises:
          ValueError: unknown `input_format`, or `columns` maps a column that is neither
            `user_id` nor an attribute.
        """
        super().__init__(
            file_pattern,
            dead_letters.SOURCE_USERS,
            functools.partial(parse_user, attributes=tuple(attributes)),
            input_format,
            columns,
            features.user_features(tuple(attributes)),
        )
