"""Tests of the JSON Lines parsers: exact rows for good lines, reasons for bad ones."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from beam_matchers import dead_letters_match

from beam_jobs import dead_letters
from beam_jobs.parse import (
    ROWS_TAG,
    ParseCatalog,
    ParseInteractions,
    ParseJsonLineFn,
    SourcedRow,
    parse_interaction,
    parse_item,
)
from recstack import features

FILE = "gs://bucket/raw/part-0.jsonl"


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


def _parse(pipeline, lines, source, parse_record):
    return (
        pipeline
        | beam.Create([(FILE, line.encode("utf-8")) for line in lines])
        | beam.ParDo(ParseJsonLineFn(source, parse_record)).with_outputs(
            dead_letters.DEAD_LETTER_TAG, main=ROWS_TAG
        )
    )


def test_interaction_lines_parse_to_rows_or_dead_letters():
    with test_pipeline.TestPipeline() as p:
        parsed = _parse(
            p,
            [*GOOD_INTERACTIONS, *BAD_INTERACTIONS],
            dead_letters.SOURCE_INTERACTIONS,
            parse_interaction,
        )
        expected_rows = [
            SourcedRow(FILE, line.removeprefix("\ufeff"), row)
            for line, row in GOOD_INTERACTIONS.items()
        ]
        assert_that(parsed[ROWS_TAG], equal_to(expected_rows), label="Rows")
        assert_that(
            parsed[dead_letters.DEAD_LETTER_TAG],
            dead_letters_match(BAD_INTERACTIONS, dead_letters.SOURCE_INTERACTIONS, FILE),
            label="DeadLetters",
        )


def test_lines_that_are_not_utf8_become_dead_letters():
    with test_pipeline.TestPipeline() as p:
        parsed = (
            p
            | beam.Create([(FILE, b'{"user_id": "\xff"}')])
            | beam.ParDo(
                ParseJsonLineFn(dead_letters.SOURCE_INTERACTIONS, parse_interaction)
            ).with_outputs(dead_letters.DEAD_LETTER_TAG, main=ROWS_TAG)
        )
        assert_that(parsed[ROWS_TAG], equal_to([]), label="Rows")
        assert_that(
            parsed[dead_letters.DEAD_LETTER_TAG],
            dead_letters_match(
                {'{"user_id": "\ufffd"}': "line is not UTF-8"},
                dead_letters.SOURCE_INTERACTIONS,
                FILE,
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


def test_catalog_lines_parse_to_rows_or_dead_letters():
    with test_pipeline.TestPipeline() as p:
        parsed = _parse(p, [*GOOD_ITEMS, *BAD_ITEMS], dead_letters.SOURCE_CATALOG, parse_item)
        expected_rows = [SourcedRow(FILE, line, row) for line, row in GOOD_ITEMS.items()]
        assert_that(parsed[ROWS_TAG], equal_to(expected_rows), label="Rows")
        assert_that(
            parsed[dead_letters.DEAD_LETTER_TAG],
            dead_letters_match(BAD_ITEMS, dead_letters.SOURCE_CATALOG, FILE),
            label="DeadLetters",
        )


def test_parse_interactions_reads_files_and_skips_blank_lines(tmp_path):
    path = tmp_path / "interactions.jsonl"
    good = json.dumps({"user_id": "u1", "item_id": "i1", "timestamp": 1700000000, "event": "click"})
    path.write_text(f"{good}\n\n   \nnot json\r\n{good}\n", encoding="utf-8")
    with test_pipeline.TestPipeline() as p:
        result = p | ParseInteractions(str(tmp_path / "*.jsonl"))
        row = _interaction("u1", "i1", 1700000000, "click")
        assert_that(result.rows, equal_to([SourcedRow(str(path), good, row)] * 2), label="Rows")
        assert_that(
            result.dead_letters,
            dead_letters_match(
                {"not json": "invalid JSON"}, dead_letters.SOURCE_INTERACTIONS, str(path)
            ),
            label="DeadLetters",
        )
        assert_that(
            result.lines | beam.combiners.Count.Globally(), equal_to([3]), label="LinesRead"
        )


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
        assert_that(result.rows, equal_to([SourcedRow(str(path), path.read_text().strip(), row)]))


def test_a_pattern_matching_no_file_fails_loudly(tmp_path):
    with pytest.raises(OSError, match="No files found"):
        with test_pipeline.TestPipeline() as p:
            _ = p | ParseInteractions(str(tmp_path / "missing-*.jsonl"))
