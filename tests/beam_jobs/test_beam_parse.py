"""Tests of the parsers: exact rows for good records, located dead letters for bad ones."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import BeamAssertException, assert_that, equal_to

from beam_jobs import dead_letters
from beam_jobs.columns import ColumnMapping
from beam_jobs.parse import (
    LINE_KEY,
    ROWS_TAG,
    ParseCatalog,
    ParseInteractions,
    SourcedRow,
    ValidateRecordFn,
    parse_interaction,
)
from beam_jobs.readers import SourceRecord
from recstack import features

FILE = "gs://bucket/raw/part-0.csv"


def _unbatch(batch):
    """ParseInteractions emits lists of rows (batches)."""
    assert isinstance(batch, list) and batch
    return batch


def _interaction(user, item, timestamp, event, value=0.0):
    return {
        features.USER_ID: user,
        features.ITEM_ID: item,
        features.TIMESTAMP: timestamp,
        features.EVENT: event,
        features.VALUE: value,
    }


GOOD_INTERACTIONS = {
    '{"user_id": "u1", "item_id": "i7", "timestamp": 1700000000, "event": "click", "value": 1.5}': (
        _interaction("u1", "i7", 1700000000, "click", 1.5)
    ),
    '{"user_id": 12, "item_id": 7, "timestamp": "2023-11-14T22:13:20Z", "event": "view"}': (
        _interaction("12", "7", 1700000000, "view")
    ),
    '{"user_id": "u2", "item_id": "i1", "timestamp": "1700000100", "event": "purchase", '
    '"value": "3", "extra": [1]}': _interaction("u2", "i1", 1700000100, "purchase", 3.0),
    '\ufeff{"user_id": "u3", "item_id": "i2", "timestamp": 1.7e9, "event": "rating", '
    '"value": null}': _interaction("u3", "i2", 1700000000, "rating"),
}

BAD_INTERACTIONS = {
    "not json": "invalid JSON",
    '{"user_id": "u1", "item_id": "i1"': "invalid JSON",
    '["u1", "i1", 1700000000, "click"]': "expected a JSON object, got array",
    '"u1"': "expected a JSON object, got string",
    '{"item_id": "i1", "timestamp": 1700000000, "event": "click"}': "missing user_id",
    '{"user_id": "", "item_id": "i1", "timestamp": 1700000000, "event": "click"}': (
        "empty user_id ''"
    ),
    '{"user_id": "u1", "item_id": null, "timestamp": 1700000000, "event": "click"}': (
        "missing item_id"
    ),
    '{"user_id": "u1", "item_id": "i1", "timestamp": "last tuesday", "event": "click"}': (
        "timestamp 'last tuesday' is neither epoch seconds nor an ISO-8601"
    ),
    '{"user_id": "u1", "item_id": "i1", "event": "click"}': "missing timestamp",
    '{"user_id": "u1", "item_id": "i1", "timestamp": 1700000000, "event": ""}': "empty event",
    '{"user_id": "u1", "item_id": "i1", "timestamp": 1700000000, "event": 3}': (
        "event must be a string, got number 3"
    ),
    '{"user_id": "u1", "item_id": "i1", "timestamp": 1700000000}': "missing event",
    '{"user_id": "u1", "item_id": "i2", "timestamp": 1700000000, "event": "click", '
    '"value": NaN}': "value must be a finite number, got nan",
    '{"user_id": "u1", "item_id": "i3", "timestamp": 1700000000, "event": "click", '
    '"value": Infinity}': "value must be a finite number, got inf",
    '{"user_id": "u1", "item_id": "i4", "timestamp": 1700000000, "event": "click", '
    '"value": "abc"}': "value must be a number, got string 'abc'",
}


def _write_lines(path, lines):
    path.write_bytes(b"".join(line.encode("utf-8") + b"\n" for line in lines))
    return str(path)


def _letters_match(expected, source, file):
    """Matcher: one dead letter per `expected` raw line, at its line, reason holding the text."""

    def match(actual):
        by_raw = {letter["raw"]: letter for letter in actual}
        if len(by_raw) != len(actual) or set(by_raw) != set(expected):
            raise BeamAssertException(f"dead letters for {sorted(by_raw)}, expected {expected}")
        for raw, (line, fragment) in expected.items():
            letter = by_raw[raw]
            if {k: v for k, v in letter.items() if k != "reason"} != {
                "source": source,
                "file": file,
                "raw": raw,
                LINE_KEY: line,
            }:
                raise BeamAssertException(f"dead letter {letter} is not at {file}:{line}")
            if fragment not in letter["reason"]:
                raise BeamAssertException(f"reason {letter['reason']!r} lacks {fragment!r}")

    return match


def _numbered(lines, reasons, first=1):
    return {line: (number, reasons[line]) for number, line in enumerate(lines, start=first)}


def test_interaction_lines_parse_to_rows_or_dead_letters(tmp_path):
    lines = [*GOOD_INTERACTIONS, *BAD_INTERACTIONS]
    path = _write_lines(tmp_path / "log.jsonl", lines)
    with test_pipeline.TestPipeline() as p:
        result = p | ParseInteractions(path)
        expected_rows = [
            SourcedRow(path, line.removeprefix("\ufeff"), row, number)
            for number, (line, row) in enumerate(GOOD_INTERACTIONS.items(), start=1)
        ]
        assert_that(result.rows | beam.FlatMap(_unbatch), equal_to(expected_rows), label="Rows")
        assert_that(
            result.dead_letters,
            _letters_match(
                _numbered(BAD_INTERACTIONS, BAD_INTERACTIONS, first=len(GOOD_INTERACTIONS) + 1),
                dead_letters.SOURCE_INTERACTIONS,
                path,
            ),
            label="DeadLetters",
        )


def test_lines_that_are_not_utf8_become_dead_letters(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'\n{"user_id": "\xff"}\n')
    with test_pipeline.TestPipeline() as p:
        result = p | ParseInteractions(str(path))
        assert_that(result.rows, equal_to([]), label="Rows")
        assert_that(
            result.dead_letters,
            equal_to(
                [
                    {
                        "source": dead_letters.SOURCE_INTERACTIONS,
                        "file": str(path),
                        LINE_KEY: 2,
                        "raw": '{"user_id": "\ufffd"}',
                        "reason": "line is not UTF-8 (invalid start byte at byte 13)",
                    }
                ]
            ),
            label="DeadLetters",
        )


GOOD_ITEMS = {
    '{"item_id": "i7", "title": "Kind of Blue", "description": "Modal.", '
    '"categories": ["jazz", "modal"]}': {
        features.ITEM_ID: "i7",
        features.TITLE: "Kind of Blue",
        features.DESCRIPTION: "Modal.",
        features.CATEGORIES: ["jazz", "modal"],
    },
    '{"item_id": 8, "categories": "rock|pop"}': {
        features.ITEM_ID: "8",
        features.TITLE: "",
        features.DESCRIPTION: "",
        features.CATEGORIES: ["rock", "pop"],
    },
}

BAD_ITEMS = {
    "{oops": "invalid JSON",
    '{"title": "No id"}': "missing item_id",
    '{"item_id": "i9", "title": 5}': "title must be a string, got number 5",
    '{"item_id": "i9", "description": ["a"]}': "description must be a string, got array",
    '{"item_id": "i9", "categories": {"a": 1}}': "categories must be an array of strings",
    '{"item_id": "i9", "categories": ["a", null]}': "must hold only strings, got null",
}


def test_catalog_lines_parse_to_rows_or_dead_letters(tmp_path):
    path = _write_lines(tmp_path / "items.jsonl", [*GOOD_ITEMS, *BAD_ITEMS])
    with test_pipeline.TestPipeline() as p:
        result = p | ParseCatalog(path)
        expected_rows = [
            SourcedRow(path, line, row, number)
            for number, (line, row) in enumerate(GOOD_ITEMS.items(), start=1)
        ]
        assert_that(result.rows, equal_to(expected_rows), label="Rows")
        assert_that(
            result.dead_letters,
            _letters_match(
                _numbered(BAD_ITEMS, BAD_ITEMS, first=len(GOOD_ITEMS) + 1),
                dead_letters.SOURCE_CATALOG,
                path,
            ),
            label="DeadLetters",
        )


def test_parse_interactions_reads_files_and_skips_blank_lines(tmp_path):
    path = tmp_path / "interactions.jsonl"
    good = json.dumps({"user_id": "u1", "item_id": "i1", "timestamp": 1700000000, "event": "click"})
    path.write_text(f"{good}\n\n   \nnot json\r\n{good}\n", encoding="utf-8")
    with test_pipeline.TestPipeline() as p:
        result = p | ParseInteractions(str(tmp_path / "*.jsonl"))
        row = _interaction("u1", "i1", 1700000000, "click")
        rows = [SourcedRow(str(path), good, row, 1), SourcedRow(str(path), good, row, 5)]
        assert_that(result.rows | beam.FlatMap(_unbatch), equal_to(rows), label="Rows")
        assert_that(
            result.dead_letters,
            _letters_match(
                {"not json": (4, "invalid JSON")}, dead_letters.SOURCE_INTERACTIONS, str(path)
            ),
            label="DeadLetters",
        )
        assert_that(result.lines | beam.CombineGlobally(sum), equal_to([3]), label="LinesRead")


def test_parse_catalog_reads_files(tmp_path):
    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": "i1", "categories": "a|b"}\n', encoding="utf-8")
    with test_pipeline.TestPipeline() as p:
        result = p | ParseCatalog(str(path))
        row = {
            features.ITEM_ID: "i1",
            features.TITLE: "",
            features.DESCRIPTION: "",
            features.CATEGORIES: ["a", "b"],
        }
        assert_that(
            result.rows, equal_to([SourcedRow(str(path), path.read_text().strip(), row, 1)])
        )


def test_a_pattern_matching_no_file_fails_loudly(tmp_path):
    with pytest.raises(OSError, match="No files found"):
        with test_pipeline.TestPipeline() as p:
            _ = p | ParseInteractions(str(tmp_path / "missing-*.jsonl"))


def test_column_mapping_renames_source_columns_before_validation():
    record = {"userId": "u1", "movieId": 7, "ts": 1700000000, "event": "rating", "value": "4"}
    columns = ColumnMapping.from_dict(
        {"user_id": "userId", "item_id": "movieId", "timestamp": "ts"}
    )
    with test_pipeline.TestPipeline() as p:
        parsed = (
            p
            | beam.Create(
                [SourceRecord(FILE, 2, "raw-2", record), SourceRecord(FILE, 3, "raw-3", {"ts": 5})]
            )
            | beam.ParDo(
                ValidateRecordFn(dead_letters.SOURCE_INTERACTIONS, parse_interaction, columns)
            ).with_outputs(dead_letters.DEAD_LETTER_TAG, main=ROWS_TAG)
        )
        row = _interaction("u1", "7", 1700000000, "rating", 4.0)
        assert_that(parsed[ROWS_TAG], equal_to([SourcedRow(FILE, "raw-2", row, 2)]), label="Rows")
        expected_letter = {
            "source": dead_letters.SOURCE_INTERACTIONS,
            "file": FILE,
            LINE_KEY: 3,
            "raw": "raw-3",
            "reason": "missing user_id",
        }
        assert_that(
            parsed[dead_letters.DEAD_LETTER_TAG], equal_to([expected_letter]), label="DeadLetters"
        )


def test_a_mapping_to_a_column_of_the_other_table_is_rejected():
    with pytest.raises(ValueError, match=r"interaction column mapping names \['title'\]"):
        ParseInteractions("x.jsonl", columns=ColumnMapping.from_dict({"title": "name"}))


def test_an_unknown_input_format_is_rejected():
    with pytest.raises(ValueError, match="input_format='xml' is not one of jsonl, csv"):
        ParseCatalog("x.xml", input_format="xml")
