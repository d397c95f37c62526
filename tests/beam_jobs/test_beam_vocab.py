"""Tests of vocabulary counting, first-seen times, ordering and writing."""

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline

from beam_jobs.vocab import WriteVocabulary, format_vocabulary, sort_vocabulary
from trainer.data import read_vocabulary


def test_sort_is_by_count_descending_then_token():
    entries = [("b", 2, 0), ("c", 5, 0), ("a", 2, 0), ("d", 1, 0), ("B", 2, 0)]
    assert [e[0] for e in sort_vocabulary(entries)] == ["c", "B", "a", "b", "d"]


def test_format_writes_tab_separated_lines():
    assert format_vocabulary([("x", 1, 50), ("y", 3, 7)]) == "y\t3\t7\nx\t1\t50\n"
    assert format_vocabulary([]) == ""


def test_write_vocabulary_writes_one_sorted_file_the_trainer_reads(tmp_path):
    path = tmp_path / "vocab.tsv"
    entries = [("zeta", 4, 40), ("alpha", 1, 10), ("beta", 4, 20), ("gamma", 2, 30)]
    with test_pipeline.TestPipeline() as p:
        _ = p | beam.Create(entries) | WriteVocabulary(str(path))
    assert sorted(tmp_path.iterdir()) == [path]
    text = path.read_text(encoding="utf-8")
    assert text == "beta\t4\t20\nzeta\t4\t40\ngamma\t2\t30\nalpha\t1\t10\n"

    vocab = read_vocabulary(str(path))
    assert vocab.tokens == ("beta", "zeta", "gamma", "alpha")
    assert vocab.counts.tolist() == [4, 4, 2, 1]
    assert vocab.first_seen.tolist() == [20, 40, 30, 10]


@pytest.mark.parametrize("line", ["a\t1\n", "a\tx\t3\n", "\t1\t2\n", "a\t1\t2\t3\n"])
def test_the_trainer_rejects_malformed_vocabulary_lines_naming_the_line(tmp_path, line):
    path = tmp_path / "vocab.tsv"
    path.write_text("ok\t2\t5\n" + line, encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab.tsv:2: expected"):
        read_vocabulary(str(path))
