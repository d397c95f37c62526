"""Reading a JSON Lines file in byte ranges gives exactly the records of a sequential read."""

import io
import json
import random

import apache_beam as beam
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import read_ranges, readers
from beam_jobs.dead_letters import SOURCE_INTERACTIONS


def _file_bytes(seed):
    rng = random.Random(seed)
    parts = ["\ufeff" + json.dumps({"n": 0})]
    for n in range(1, 60):
        kind = rng.random()
        if kind < 0.1:
            parts.append("")
        elif kind < 0.2:
            parts.append("{broken")
        else:
            parts.append(json.dumps({"n": n, "pad": "x" * rng.randint(0, 40), "s": "é"}))
    data = "".join(p + ("\r\n" if rng.random() < 0.3 else "\n") for p in parts).encode()
    return data if seed % 2 else data + b'{"last": "no newline"}'


def _sequential(data, path):
    return list(readers._read_jsonl(io.BytesIO(data), path))


def _by_ranges(data, path, range_bytes):
    ranges = read_ranges.split_file(path, len(data), range_bytes)
    counts = []
    for r in ranges:
        chunk = data[max(r.start - 1, 0) : max(r.end - 1, 0)]
        counts.append((r.path, r.index, chunk.count(b"\n")))
    offsets = read_ranges.lines_before(counts)
    out = []
    for r in ranges:
        out.extend(read_ranges.read_jsonl_range(io.BytesIO(data), r, offsets[r.path, r.index]))
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("range_bytes", [1, 2, 7, 64, 1000, 10**6])
def test_ranges_give_the_same_outcomes_as_a_sequential_read(seed, range_bytes):
    data = _file_bytes(seed)
    assert _by_ranges(data, "f.jsonl", range_bytes) == _sequential(data, "f.jsonl")


def test_line_break_counts_match_the_file(tmp_path):
    data = _file_bytes(3)
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    ranges = read_ranges.split_file(str(path), len(data), 50)
    counts = [read_ranges.count_line_breaks(r) for r in ranges]
    expected = [data[max(r.start - 1, 0) : max(r.end - 1, 0)].count(b"\n") for r in ranges]
    assert [c[2] for c in counts] == expected


def test_only_plain_json_lines_files_above_one_range_split():
    assert read_ranges.is_splittable("a.jsonl", "jsonl", 101, 100)
    assert not read_ranges.is_splittable("a.jsonl", "jsonl", 100, 100)
    assert not read_ranges.is_splittable("a.jsonl.gz", "jsonl", 10**9, 100)
    assert not read_ranges.is_splittable("a.csv", "csv", 10**9, 100)
    assert read_ranges.split_file("a", 0, 10) == [read_ranges.FileRange("a", 0, 0, 0)]


def test_read_records_splits_a_large_file_and_keeps_every_record(tmp_path, monkeypatch):
    monkeypatch.setattr(read_ranges, "RANGE_BYTES", 97)
    data = _file_bytes(1)
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)
    small = tmp_path / "small.jsonl"
    small.write_bytes(b'{"n": "small"}\n')
    expected = [r for _, r in _sequential(data, str(path)) if r is not None]
    expected += [r for _, r in _sequential(small.read_bytes(), str(small)) if r is not None]
    with test_pipeline.TestPipeline() as p:
        records = p | readers.ReadRecords(
            str(tmp_path / "*.jsonl"), "jsonl", SOURCE_INTERACTIONS, batch_size=4
        )
        flat = records | beam.FlatMap(lambda batch: batch)
        assert_that(flat, equal_to(expected))
