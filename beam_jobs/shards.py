"""Deterministic sharded files: the same records always give byte-identical files.

Beam's own file sinks assign records to shards at random and write them in arrival order, so
two runs on the same input produce different bytes. `WriteShards` instead puts each record in
the shard given by a stable hash of its bytes, sorts every shard's records, and writes the
shard with a fixed (gzip mtime 0) header. Reruns therefore produce identical files, which
makes outputs diffable, cacheable by content and checkable with a checksum.

A shard's records are sorted in one worker's memory: keep shards to a few hundred MB
(`rows_per_shard`).
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import google_crc32c
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

#: Record framings of `WriteShards`.
FORMAT_TFRECORD = "tfrecord"
FORMAT_LINES = "lines"
_FORMATS = (FORMAT_TFRECORD, FORMAT_LINES)

#: Gzip level of compressed shards: 1 compresses about 3.5x faster than the default 6, for
#: files about 10% larger (measured on TFRecords of interaction examples).
GZIP_LEVEL = 1
#: Records per shard when the shard count is chosen from the record count.
DEFAULT_ROWS_PER_SHARD = 200_000

_RECORDS = "records"
_SHARDS = "shards"


def _masked_crc32c(data: bytes) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(record: bytes) -> bytes:
    """Returns `record` framed as one TFRecord entry.

    The framing is TensorFlow's: uint64 length, masked crc32c of the length, the data, masked
    crc32c of the data (all little-endian), readable by `tf.data.TFRecordDataset`.
    """
    length = struct.pack("<Q", len(record))
    return (
        length
        + struct.pack("<I", _masked_crc32c(length))
        + record
        + struct.pack("<I", _masked_crc32c(record))
    )


def shard_path(path_prefix: str, index: int, num_shards: int, suffix: str) -> str:
    """Returns `<path_prefix>-IIIII-of-NNNNN<suffix>`, the naming of Beam's file sinks."""
    return f"{path_prefix}-{index:05d}-of-{num_shards:05d}{suffix}"


def shard_of(record: bytes, num_shards: int) -> int:
    """Returns the shard of `record`: a CRC-32 of its bytes modulo `num_shards` (stable across
    processes and Python versions, unlike `hash`)."""
    return zlib.crc32(record) % num_shards


def choose_num_shards(count: int, num_shards: int, rows_per_shard: int) -> int:
    """Returns `num_shards` when positive, else `ceil(count / rows_per_shard)` (at least 1)."""
    if num_shards > 0:
        return num_shards
    return max(1, math.ceil(count / rows_per_shard))


def _key_by_shard(record: bytes, num_shards: int) -> tuple[int, bytes]:
    return shard_of(record, num_shards), record


def _shard_indices(num_shards: int) -> Iterator[tuple[int, None]]:
    for index in range(num_shards):
        yield index, None


def write_shard(
    path: str, records: Iterable[bytes], file_format: str = FORMAT_TFRECORD, compress: bool = True
) -> None:
    """Writes `records` sorted by their bytes to `path`, framed (`FORMAT_TFRECORD` or
    `FORMAT_LINES`), gzipped at `GZIP_LEVEL` with a fixed header (mtime 0) when `compress`."""
    ordered = sorted(records)
    frame = tfrecord_frame if file_format == FORMAT_TFRECORD else _line_frame
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31) if compress else None
    with FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        # Framing in chunks keeps writes large without holding the whole shard twice.
        for start in range(0, len(ordered), 4096):
            data = b"".join(frame(r) for r in ordered[start : start + 4096])
            f.write(compressor.compress(data) if compressor else data)
        if compressor:
            f.write(compressor.flush())


class WriteShardFn(beam.DoFn):
    """Writes one shard: its records sorted by their bytes, framed, optionally gzipped.

    Input is `(index, {"records": [bytes...], "shards": [None]})` from a CoGroupByKey; yields
    the path written. Shards without records are written empty, so the file set is complete.
    """

    def __init__(self, path_prefix: str, suffix: str, file_format: str, compress: bool) -> None:
        super().__init__()
        self._path_prefix = path_prefix
        self._suffix = suffix
        self._file_format = file_format
        self._compress = compress

    def process(
        self, element: tuple[int, dict[str, Iterable[Any]]], num_shards: int
    ) -> Iterator[str]:
        index, grouped = element
        path = shard_path(self._path_prefix, index, num_shards, self._suffix)
        write_shard(path, grouped[_RECORDS], self._file_format, self._compress)
        yield path


def _line_frame(record: bytes) -> bytes:
    return record + b"\n"


class WriteShards(beam.PTransform):
    """Writes byte records as deterministic shards `<path_prefix>-IIIII-of-NNNNN<suffix>`.

    Applied to a PCollection of bytes (serialized examples, or UTF-8 lines without their line
    break); returns a PCollection of the paths written. Each record goes to `shard_of(record,
    N)`; every shard is written, sorted, even when empty, so an empty input gives one empty
    shard.
    """

    def __init__(
        self,
        path_prefix: str,
        suffix: str,
        file_format: str = FORMAT_TFRECORD,
        compress: bool = True,
        num_shards: int = 0,
        rows_per_shard: int = DEFAULT_ROWS_PER_SHARD,
    ) -> None:
        """Args:
        path_prefix: Directory and file name prefix, e.g. `out/train` (local or `gs://`).
        suffix: File name suffix, e.g. `.tfrecord.gz`.
        file_format: `FORMAT_TFRECORD` or `FORMAT_LINES` (each record plus "\\n").
        compress: Gzip each file.
        num_shards: Number of shards; 0 chooses `ceil(records / rows_per_shard)`.
        rows_per_shard: Target records per shard when `num_shards` is 0.

        Raises:
          ValueError: unknown `file_format`, or a negative shard setting.
        """
        super().__init__()
        if file_format not in _FORMATS:
            raise ValueError(f"file_format {file_format!r} is not one of {_FORMATS}")
        if num_shards < 0 or rows_per_shard < 1:
            raise ValueError(
                f"num_shards={num_shards} must be >= 0 and rows_per_shard={rows_per_shard} >= 1"
            )
        self._path_prefix = path_prefix
        self._suffix = suffix
        self._file_format = file_format
        self._compress = compress
        self._num_shards = num_shards
        self._rows_per_shard = rows_per_shard

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        if self._num_shards > 0:
            shards = records.pipeline | "FixedShardCount" >> beam.Create([self._num_shards])
        else:
            shards = (
                records
                | "CountRecords" >> beam.combiners.Count.Globally()
                | "ChooseShardCount"
                >> beam.Map(choose_num_shards, self._num_shards, self._rows_per_shard)
            )
        num_shards = beam.pvalue.AsSingleton(shards)
        keyed = records | "KeyByShard" >> beam.Map(_key_by_shard, num_shards)
        every_shard = shards | "ShardIndices" >> beam.FlatMap(_shard_indices)
        return (
            {_RECORDS: keyed, _SHARDS: every_shard}
            | "GroupByShard" >> beam.CoGroupByKey()
            | "WriteShard"
            >> beam.ParDo(
                WriteShardFn(self._path_prefix, self._suffix, self._file_format, self._compress),
                num_shards,
            )
        )
