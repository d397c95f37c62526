"""Reading one large JSON Lines file with several workers, keeping exact line numbers.

A plain (uncompressed) JSON Lines file is cut into byte ranges of `RANGE_BYTES`; a line belongs
to the range holding its first byte. The line number of a range's first line is 1 plus the
number of line breaks before it, which takes two passes over the file, both parallel:

1. every range counts the line breaks in `[start - 1, end - 1)`, so the counts of the ranges
   before range r add up to the line breaks in `[0, start_r - 1)`;
2. every range then reads its lines, numbering from that prefix sum (a side input).

Counting runs at memory speed (`bytes.count`), so the first pass costs little next to decoding.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.readers import (
    BLANK,
    FORMAT_JSONL,
    GZIP_SUFFIX,
    ReadRecordsFn,
    SourceRecord,
    decode_json_line,
)

#: Bytes per range; files up to this size are read whole by one worker.
RANGE_BYTES = 8 * 1024 * 1024
_CHUNK = 8 * 1024 * 1024


class FileRange(NamedTuple):
    """Bytes `[start, end)` of `path`, the `index`-th range of the file."""

    path: str
    index: int
    start: int
    end: int


def is_splittable(path: str, input_format: str, size: int, range_bytes: int = 0) -> bool:
    """True for a plain JSON Lines file larger than one range (`range_bytes`, 0: the module's
    `RANGE_BYTES`)."""
    limit = range_bytes or RANGE_BYTES
    return input_format == FORMAT_JSONL and not path.endswith(GZIP_SUFFIX) and size > limit


def split_file(path: str, size: int, range_bytes: int = 0) -> list[FileRange]:
    """Returns the ranges of a file of `size` bytes, each `range_bytes` (0: `RANGE_BYTES`)
    long but the last."""
    range_bytes = range_bytes or RANGE_BYTES
    starts = range(0, max(size, 1), range_bytes)
    return [
        FileRange(path, index, start, min(start + range_bytes, size))
        for index, start in enumerate(starts)
    ]


def _open(path: str) -> Any:
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def count_line_breaks(file_range: FileRange) -> tuple[str, int, int]:
    """Returns `(path, index, line breaks in [start - 1, end - 1))`, clipped at 0."""
    begin, stop = max(file_range.start - 1, 0), max(file_range.end - 1, 0)
    count = 0
    with _open(file_range.path) as f:
        f.seek(begin)
        remaining = stop - begin
        while remaining > 0:
            chunk = f.read(min(_CHUNK, remaining))
            if not chunk:
                break
            count += chunk.count(b"\n")
            remaining -= len(chunk)
    return file_range.path, file_range.index, count


def lines_before(counts: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """Returns `{(path, index): line breaks before the range's first line}`: the prefix sums
    of `count_line_breaks` per file."""
    by_path: dict[str, dict[int, int]] = collections.defaultdict(dict)
    for path, index, count in counts:
        by_path[path][index] = count
    offsets = {}
    for path, per_index in by_path.items():
        total = 0
        for index in sorted(per_index):
            offsets[path, index] = total
            total += per_index[index]
    return offsets


def read_jsonl_range(
    stream: Any, file_range: FileRange, breaks_before: int
) -> Iterator[tuple[str, SourceRecord | None]]:
    """Yields the `(kind, record)` outcomes of the lines starting in `file_range`.

    Args:
      stream: The file, opened for binary reading, seekable.
      file_range: The range to read.
      breaks_before: Line breaks in `[0, start - 1)` (see `lines_before`).
    """
    number = breaks_before + 1
    position = file_range.start
    if file_range.start > 0:
        stream.seek(file_range.start - 1)
        skipped = stream.readline()  # The end of the line that began before the range.
        position = file_range.start - 1 + len(skipped)
        if skipped.endswith(b"\n"):
            number += 1
    else:
        stream.seek(0)
    while position < file_range.end:
        data = stream.readline()
        if not data:
            return
        position += len(data)
        line = data.removesuffix(b"\n").removesuffix(b"\r")
        if line.strip():
            yield decode_json_line(file_range.path, number, line)
        else:
            yield BLANK, None
        number += 1


class ReadRangeFn(ReadRecordsFn):
    """Reads one `FileRange` of a JSON Lines file into `SourceRecord`s (or batches of them);
    the line counts of all ranges arrive as the side input `offsets` (`lines_before`)."""

    def __init__(self, source: str, batch_size: int = 0) -> None:
        super().__init__(FORMAT_JSONL, source, batch_size)

    def process(self, file_range: FileRange, offsets: dict[tuple[str, int], int]) -> Iterator:
        breaks = offsets[file_range.path, file_range.index]

        def outcomes() -> Iterator[tuple[str, SourceRecord | None]]:
            with _open(file_range.path) as stream:
                yield from read_jsonl_range(stream, file_range, breaks)

        yield from self.emit(outcomes(), file_range.path, FORMAT_JSONL)


class ReadFileRanges(beam.PTransform):
    """Reads the given ranges of JSON Lines files in parallel (see the module docstring).

    Applied to the pipeline; returns what `readers.ReadRecords` returns for those files.
    """

    def __init__(self, ranges: list[FileRange], source: str, batch_size: int = 0) -> None:
        super().__init__()
        self._ranges = ranges
        self._source = source
        self._batch_size = batch_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        ranges = pbegin | "Ranges" >> beam.Create(self._ranges) | "SpreadRanges" >> beam.Reshuffle()
        offsets = (
            ranges
            | "CountLineBreaks" >> beam.Map(count_line_breaks)
            | "CollectCounts" >> beam.combiners.ToList()
            | "LinesBefore" >> beam.Map(lines_before)
        )
        return ranges | "ReadRange" >> beam.ParDo(
            ReadRangeFn(self._source, self._batch_size),
            offsets=beam.pvalue.AsSingleton(offsets),
        )
