"""Tests of vocabulary counting, ordering and writing."""

import apache_beam as beam
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.vocab import ComputeVocabulary, WriteVocabulary, format_vocabulary, sort_vocabulary


def test_sort_is_by_count_descending_then_token():
    pairs = [("b", 2), ("c", 5), ("a", 2), ("d", 1), ("B", 2)]
    assert sort_vocabulary(pairs) == [("c", 5), ("B", 2), ("a", 2), ("b", 2), ("d", 1)]


def test_format_writes_tab_separated_lines():
    assert format_vocabulary([("x", 1), ("y", 3)]) == "y\t3\nx\t1\n"
    assert format_vocabulary([]) == ""


def test_compute_vocabulary_counts_each_value_of_the_key():
    rows = [{"user_id": u, "item_id": "i"} for u in ["u1", "u2", "u1", "u3", "u1", "u2"]]
    with test_pipeline.TestPipeline() as p:
        vocab = p | beam.Create(rows) | ComputeVocabulary("user_id")
        assert_that(vocab, equal_to([("u1", 3), ("u2", 2), ("u3", 1)]))


def test_write_vocabulary_writes_one_sorted_file(tmp_path):
    path = tmp_path / "vocab.tsv"
    pairs = [("zeta", 4), ("alpha", 1), ("beta", 4), ("gamma", 2)]
    with test_pipeline.TestPipeline() as p:
        _ = p | beam.Create(pairs) | WriteVocabulary(str(path))
    assert sorted(tmp_path.iterdir()) == [path]
    assert path.read_text(encoding="utf-8") == "beta\t4\nzeta\t4\ngamma\t2\nalpha\t1\n"
