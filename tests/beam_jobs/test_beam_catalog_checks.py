"""Tests of the catalog checks: duplicate item ids and interactions with unknown items."""

import apache_beam as beam
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from beam_matchers import dead_letters_match

from beam_jobs import dead_letters
from beam_jobs.build import to_event
from beam_jobs.dedupe import DropDuplicateItems
from beam_jobs.known_items import CheckKnownItems
from beam_jobs.parse import SourcedRow
from recstack import features


def _item(item_id, title):
    return {
        features.ITEM_ID: item_id,
        features.TITLE: title,
        features.DESCRIPTION: "",
        features.CATEGORIES: [],
    }


def _sourced_item(file, line, item_id, title):
    return SourcedRow(file, f"{item_id}:{title}", _item(item_id, title), line)


def test_duplicate_items_keep_the_record_that_sorts_first_by_file_and_line():
    records = [
        _sourced_item("b.jsonl", 1, "i1", "from b"),
        _sourced_item("a.jsonl", 9, "i1", "z from a"),
        _sourced_item("a.jsonl", 10, "i1", "y from a"),
        _sourced_item("a.jsonl", 11, "i2", "only"),
    ]
    # The same outcome for every input order: the kept record must not depend on arrival.
    for ordered in (records, records[::-1]):
        with test_pipeline.TestPipeline() as p:
            result = p | beam.Create(ordered) | DropDuplicateItems()
            assert_that(
                result.rows, equal_to([_item("i1", "z from a"), _item("i2", "only")]), "Rows"
            )
            assert_that(
                result.dead_letters
                | beam.Map(lambda letter: (letter["file"], letter["line"], letter["raw"])),
                equal_to([("b.jsonl", 1, "i1:from b"), ("a.jsonl", 10, "i1:y from a")]),
                "DeadLetters",
            )
            assert_that(
                result.dead_letters | "Reasons" >> beam.Map(lambda letter: letter["reason"]),
                equal_to(
                    [
                        "duplicate item_id 'i1': the catalog holds it more than once and the "
                        "record 'i1:z from a' from a.jsonl line 9 was kept; keep one line per "
                        "item_id"
                    ]
                    * 2
                ),
                "Reasons",
            )


def _interaction(user, item):
    row = {
        features.USER_ID: user,
        features.ITEM_ID: item,
        features.TIMESTAMP: 1,
        features.EVENT: "click",
        features.VALUE: 0.0,
    }
    return SourcedRow("log.jsonl", f"{user}->{item}", row, 7)


def test_interactions_with_items_outside_the_catalog_become_dead_letters():
    interactions = [
        _interaction("u1", "i1"),
        _interaction("u2", "i1"),
        _interaction("u1", "ghost"),
        _interaction("u3", "i2"),
    ]
    with test_pipeline.TestPipeline() as p:
        catalog = p | "Catalog" >> beam.Create(
            [_item("i1", "a"), _item("i2", "b"), _item("i3", "cold")]
        )
        batches = [interactions[:2], interactions[2:]]
        result = p | "Interactions" >> beam.Create(batches) | CheckKnownItems(catalog)
        expected = [
            [to_event(interactions[i].row) for i in (0, 1)],
            [to_event(interactions[3].row)],
        ]
        assert_that(result.rows, equal_to(expected), label="Rows")
        assert_that(
            result.dead_letters,
            dead_letters_match(
                {"u1->ghost": "unknown item_id 'ghost': not in the item catalog"},
                dead_letters.SOURCE_INTERACTIONS,
                "log.jsonl",
            ),
            label="DeadLetters",
        )


def test_a_non_strict_catalog_keeps_interactions_of_unknown_items():
    interactions = [_interaction("u1", "i1"), _interaction("u1", "ghost")]
    with test_pipeline.TestPipeline() as p:
        catalog = p | "Catalog" >> beam.Create([_item("i1", "a")])
        result = p | "Interactions" >> beam.Create([interactions]) | CheckKnownItems(catalog, False)
        assert_that(result.rows, equal_to([[to_event(s.row) for s in interactions]]), label="Rows")
        assert_that(result.dead_letters, equal_to([]), label="DeadLetters")
