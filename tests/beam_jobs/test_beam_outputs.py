"""Deterministic shards (`beam_jobs.shards`) and staged, overwrite-safe outputs
(`beam_jobs.outputs`)."""

import glob
import gzip
import os

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing import test_pipeline

from beam_jobs import outputs, shards


def _write(path_prefix, records, **kwargs):
    with test_pipeline.TestPipeline() as p:
        _ = p | beam.Create(records) | shards.WriteShards(path_prefix, ".tfrecord.gz", **kwargs)
    return sorted(glob.glob(path_prefix + "-*"))


def _read_tfrecords(paths):
    return [r.numpy() for r in tf.data.TFRecordDataset(paths, compression_type="GZIP")]


def test_tfrecord_framing_is_what_tensorflow_reads(tmp_path):
    records = [b"", b"a", b"x" * 100_000, bytes(range(256))]
    path = tmp_path / "framed.tfrecord"
    path.write_bytes(b"".join(shards.tfrecord_frame(r) for r in records))
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == records


def test_every_record_lands_once_in_its_hash_shard_sorted(tmp_path):
    records = [f"record-{i}".encode() for i in range(500)]
    paths = _write(str(tmp_path / "out"), records, num_shards=4)

    assert [os.path.basename(p) for p in paths] == [
        f"out-0000{i}-of-00004.tfrecord.gz" for i in range(4)
    ]
    for index, path in enumerate(paths):
        got = _read_tfrecords([path])
        expected = sorted(r for r in records if shards.shard_of(r, 4) == index)
        assert got == expected
    assert sorted(_read_tfrecords(paths)) == sorted(records)


def test_input_order_does_not_change_the_bytes(tmp_path):
    records = [f"r{i:04d}".encode() * (i % 7 + 1) for i in range(300)]
    first = _write(str(tmp_path / "a" / "out"), records, num_shards=3)
    second = _write(str(tmp_path / "b" / "out"), records[::-1], num_shards=3)
    for a, b in zip(first, second, strict=True):
        with open(a, "rb") as fa, open(b, "rb") as fb:
            assert fa.read() == fb.read()


def test_the_shard_count_follows_the_record_count_and_empty_input_gives_one_shard(tmp_path):
    records = [str(i).encode() for i in range(25)]
    assert len(_write(str(tmp_path / "auto"), records, rows_per_shard=10)) == 3
    empty = _write(str(tmp_path / "empty"), [], rows_per_shard=10)
    assert [os.path.basename(p) for p in empty] == ["empty-00000-of-00001.tfrecord.gz"]
    assert _read_tfrecords(empty) == []
    assert shards.choose_num_shards(0, 0, 10) == 1
    assert shards.choose_num_shards(10, 0, 10) == 1
    assert shards.choose_num_shards(11, 0, 10) == 2
    assert shards.choose_num_shards(11, 5, 10) == 5


def test_lines_format_writes_plain_text(tmp_path):
    prefix = str(tmp_path / "letters")
    with test_pipeline.TestPipeline() as p:
        _ = (
            p
            | beam.Create([b"b", b"a", b"c"])
            | shards.WriteShards(
                prefix, ".jsonl", file_format=shards.FORMAT_LINES, compress=False, num_shards=1
            )
        )
    with open(prefix + "-00000-of-00001.jsonl", "rb") as f:
        assert f.read() == b"a\nb\nc\n"


def test_gzip_headers_carry_no_timestamp(tmp_path):
    path = _write(str(tmp_path / "out"), [b"x"], num_shards=1)[0]
    with open(path, "rb") as f:
        header = f.read(10)
    assert header[:3] == b"\x1f\x8b\x08" and header[4:8] == b"\x00\x00\x00\x00"
    with gzip.open(path) as f:
        assert f.read() == shards.tfrecord_frame(b"x")


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="file_format"):
        shards.WriteShards("p", ".x", file_format="csv")
    with pytest.raises(ValueError, match="num_shards"):
        shards.WriteShards("p", ".x", num_shards=-1)


def _fill(directory, files):
    os.makedirs(directory, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(text)


def _contents(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            out[name] = f.read()
    return out


def test_staged_output_publishes_on_success_and_replaces_only_with_overwrite(tmp_path):
    out = str(tmp_path / "data")
    with outputs.staged_output(out, overwrite=False) as staging:
        assert staging.startswith(out + outputs.STAGING_INFIX)
        assert not os.path.exists(out)  # Nothing is visible until the job succeeded.
        _fill(staging, {"a.txt": "one", "b.txt": "two"})
    assert _contents(out) == {"a.txt": "one", "b.txt": "two"}

    with pytest.raises(outputs.OutputExistsError, match="--overwrite"):
        with outputs.staged_output(out, overwrite=False):
            pytest.fail("entered the context although the output exists")

    with outputs.staged_output(out, overwrite=True) as staging:
        _fill(staging, {"c.txt": "three"})
    assert _contents(out) == {"c.txt": "three"}
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_a_failing_job_discards_its_staging_and_keeps_the_old_output(tmp_path):
    out = str(tmp_path / "data")
    _fill(out, {"old.txt": "kept"})
    with pytest.raises(RuntimeError, match="boom"):
        with outputs.staged_output(out, overwrite=True) as staging:
            _fill(staging, {"half.txt": "partial"})
            raise RuntimeError("boom")
    assert _contents(out) == {"old.txt": "kept"}
    assert sorted(os.listdir(tmp_path)) == ["data"]


def test_an_empty_output_directory_counts_as_free(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    outputs.check_writable(str(out), overwrite=False)


def test_file_by_file_publishing_for_filesystems_without_directory_rename(tmp_path):
    # The path taken for gs:// and other object stores, exercised on local directories.
    out, staging = str(tmp_path / "data"), str(tmp_path / "data.staging-x")
    _fill(out, {"old.txt": "gone", "same.txt": "old"})
    _fill(staging, {"same.txt": "new", "added.txt": "added"})
    outputs._publish_by_files(staging, out)
    assert _contents(out) == {"added.txt": "added", "same.txt": "new"}
    assert outputs.list_files(staging) == []
