"""Reading and validating the raw inputs: JSON Lines interactions and item catalog.

`ParseInteractions` and `ParseCatalog` read every file matching a pattern (local or `gs://`),
skip blank lines, parse each remaining line as one JSON object and validate it against the data
contract (see `beam_jobs.fields`). Valid rows leave as `SourcedRow`s, which keep the file and the
original line so later steps (unknown items, duplicates) can still emit complete dead letters;
invalid rows leave as dead letters. Each outcome is counted with a Beam metrics counter in the
namespace of its source ("interactions" or "catalog").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam import coders

from beam_jobs import dead_letters, fields
from recstack import features

#: Tag of the main output of `ParseJsonLineFn`.
ROWS_TAG = "rows"
_BOM = "\ufeff"


class SourcedRow(NamedTuple):
    """A validated row with the line it came from.

    Attributes:
      file: Path of the input file.
      raw: The input line, decoded, without its line break.
      row: The validated row: a dict keyed by the contract's feature names.
    """

    file: str
    raw: str
    row: dict[str, Any]


class ParseResult(NamedTuple):
    """Outputs of `ParseInteractions` and `ParseCatalog`.

    Attributes:
      rows: PCollection of `SourcedRow`, one per valid line.
      dead_letters: PCollection of dead-letter dicts, one per invalid line.
      lines: PCollection of `(file, line_bytes)`, one per non-blank input line; its size is the
        number of rows read, which must equal rows kept plus dead letters.
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


class ParseJsonLineFn(beam.DoFn):
    """Parses `(file, line_bytes)` into `SourcedRow`s; bad lines go to the dead-letter output.

    The main output is tagged `ROWS_TAG`, the dead letters `dead_letters.DEAD_LETTER_TAG`.
    A line is rejected when it is not UTF-8, not JSON, not a JSON object, or when
    `parse_record` raises `fields.FieldError`.
    """

    def __init__(self, source: str, parse_record: Callable[[dict[str, Any]], dict[str, Any]]):
        """Args:
        source: `dead_letters.SOURCE_INTERACTIONS` or `SOURCE_CATALOG`; also the metrics
          namespace.
        parse_record: Module-level function validating one decoded object (it is pickled to
          the workers), e.g. `parse_interaction`.
        """
        super().__init__()
        self._source = source
        self._parse_record = parse_record
        self._parsed = beam.metrics.Metrics.counter(source, "parsed")
        self._bad_encoding = beam.metrics.Metrics.counter(source, "dead_letter_not_utf8")
        self._bad_json = beam.metrics.Metrics.counter(source, "dead_letter_invalid_json")
        self._not_object = beam.metrics.Metrics.counter(source, "dead_letter_not_an_object")
        self._bad_field = beam.metrics.Metrics.counter(source, "dead_letter_invalid_field")

    def process(self, element: tuple[str, bytes]) -> Iterator[Any]:
        file, data = element
        try:
            line = data.decode("utf-8").removeprefix(_BOM)
        except UnicodeDecodeError as e:
            self._bad_encoding.inc()
            raw = data.decode("utf-8", errors="replace")
            yield self._reject(file, raw, f"line is not UTF-8 ({e.reason} at byte {e.start})")
            return
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            self._bad_json.inc()
            yield self._reject(file, line, f"invalid JSON: {e}")
            return
        if not isinstance(record, dict):
            self._not_object.inc()
            yield self._reject(
                file, line, f"expected a JSON object, got {fields.json_type_name(record)}"
            )
            return
        try:
            row = self._parse_record(record)
        except fields.FieldError as e:
            self._bad_field.inc()
            yield self._reject(file, line, str(e))
            return
        self._parsed.inc()
        yield SourcedRow(file, line, row)

    def _reject(self, file: str, raw: str, reason: str) -> beam.pvalue.TaggedOutput:
        letter = dead_letters.dead_letter(self._source, file, raw, reason)
        return beam.pvalue.TaggedOutput(dead_letters.DEAD_LETTER_TAG, letter)


class DropBlankLinesFn(beam.DoFn):
    """Passes `(file, line_bytes)` through unless the line is blank, counting the blank ones.

    Blank lines (e.g. a trailing empty line) are not rows: they are neither read rows nor dead
    letters.
    """

    def __init__(self, source: str):
        """Args: source: Metrics namespace, e.g. `dead_letters.SOURCE_INTERACTIONS`."""
        super().__init__()
        self._blank = beam.metrics.Metrics.counter(source, "blank_lines_skipped")

    def process(self, element: tuple[str, bytes]) -> Iterator[tuple[str, bytes]]:
        if element[1].strip():
            yield element
        else:
            self._blank.inc()


class _ParseJsonLines(beam.PTransform):
    """Reads the files matching a pattern and parses each non-blank line with `parse_record`."""

    def __init__(
        self,
        file_pattern: str,
        source: str,
        parse_record: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        super().__init__()
        self._file_pattern = file_pattern
        self._source = source
        self._parse_record = parse_record

    def expand(self, pbegin: beam.pvalue.PBegin) -> ParseResult:
        lines = (
            pbegin
            # Bytes, so that a line that is not UTF-8 becomes a dead letter, not a failed job.
            | "Read"
            >> beam.io.ReadFromTextWithFilename(self._file_pattern, coder=coders.BytesCoder())
            | "DropBlankLines" >> beam.ParDo(DropBlankLinesFn(self._source))
        )
        parsed = lines | "Parse" >> beam.ParDo(
            ParseJsonLineFn(self._source, self._parse_record)
        ).with_outputs(dead_letters.DEAD_LETTER_TAG, main=ROWS_TAG)
        return ParseResult(parsed[ROWS_TAG], parsed[dead_letters.DEAD_LETTER_TAG], lines)


class ParseInteractions(_ParseJsonLines):
    """Reads and validates JSON Lines interactions (see `parse_interaction`).

    Applied to the pipeline; returns a `ParseResult` whose rows hold interaction dicts.
    """

    def __init__(self, file_pattern: str) -> None:
        """Args: file_pattern: File path or glob, local or `gs://...`."""
        super().__init__(file_pattern, dead_letters.SOURCE_INTERACTIONS, parse_interaction)


class ParseCatalog(_ParseJsonLines):
    """Reads and validates the JSON Lines item catalog (see `parse_item`).

    Applied to the pipeline; returns a `ParseResult` whose rows hold item dicts. Duplicate ids
    are left in; `beam_jobs.dedupe.DropDuplicateItems` resolves them.
    """

    def __init__(self, file_pattern: str) -> None:
        """Args: file_pattern: File path or glob, local or `gs://...`."""
        super().__init__(file_pattern, dead_letters.SOURCE_CATALOG, parse_item)
