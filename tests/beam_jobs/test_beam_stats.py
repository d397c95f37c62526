"""Tests of the stats computation and the row accounting check."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.stats import COUNTED_STATS, WriteStats, check_row_accounting, finish_stats
from recstack import features

ROWS = {
    features.STAT_ROWS_IN: 11,
    features.STAT_TRAIN_ROWS: 5,
    features.STAT_EVAL_ROWS: 3,
    features.STAT_TEST_ROWS: 2,
    features.STAT_DUPLICATES_DROPPED: 1,
}


def test_finish_adds_rows_written_and_the_extras():
    counts = {key: i + 1 for i, key in enumerate(COUNTED_STATS)}
    stats = finish_stats(counts, {"a": 1}, {"b": [2]}, ROWS)
    assert stats == {**counts, **ROWS, features.STAT_ROWS_WRITTEN: 10, "a": 1, "b": [2]}
    with pytest.raises(ValueError, match="computed twice"):
        finish_stats(counts, ROWS, {features.STAT_ROWS_IN: 0})
    with pytest.raises(ValueError, match="lack \\['test_rows'\\]"):
        finish_stats(counts, {k: v for k, v in ROWS.items() if k != features.STAT_TEST_ROWS})


def test_finish_names_missing_counts():
    with pytest.raises(ValueError, match="lack the counts \\['users'\\]"):
        finish_stats({k: 0 for k in COUNTED_STATS if k != features.STAT_USERS}, ROWS)


def test_row_accounting_passes_when_every_row_is_accounted_for():
    check_row_accounting({"rows_in": 10, "rows_written": 7, "dead_letters": 3})


def test_row_accounting_reports_the_numbers_of_a_mismatch():
    with pytest.raises(
        RuntimeError,
        match=r"rows_in=10 but rows_written=6 \+ dead_letters=2 \+ duplicates_dropped=1 = 9",
    ):
        check_row_accounting(
            {"rows_in": 10, "rows_written": 6, "dead_letters": 2, "duplicates_dropped": 1}
        )
    check_row_accounting(
        {"rows_in": 10, "rows_written": 7, "dead_letters": 2, "duplicates_dropped": 1}
    )


def test_write_stats_counts_each_pcollection(tmp_path):
    sizes = {key: i for i, key in enumerate(COUNTED_STATS)}
    with test_pipeline.TestPipeline() as p:
        counted = {
            key: p | f"Make{i}" >> beam.Create(list(range(size)))
            for i, (key, size) in enumerate(sizes.items())
        }
        split = p | "Split" >> beam.Create([{features.STAT_SPLIT_TIMESTAMP: 42}])
        rows = p | "Rows" >> beam.Create([ROWS])
        stats = counted | WriteStats(str(tmp_path), (split, rows))
        expected = {
            **sizes,
            **ROWS,
            features.STAT_ROWS_WRITTEN: 10,
            features.STAT_SPLIT_TIMESTAMP: 42,
        }
        assert_that(stats, equal_to([expected]))
    written = json.loads((tmp_path / features.STATS_FILE).read_text())
    assert written == expected


def test_write_stats_rejects_an_incomplete_input():
    with pytest.raises(ValueError, match="needs exactly the PCollections"):
        with test_pipeline.TestPipeline() as p:
            _ = {features.STAT_ROWS_IN: p | beam.Create([1])} | WriteStats("/unused")
