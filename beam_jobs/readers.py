"""Reading raw input files record by record, with the line each record came from.

`ReadRecords` reads every file matching a glob (local or `gs://`, through Beam's filesystems) in
one of three formats, each plain or gzip-compressed (`.gz`):

- JSON Lines: one JSON object per line; blank lines are skipped.
- CSV: a header row naming the columns, then RFC-4180 records (quoted fields may hold commas,
  quotes and line breaks). Empty fields read as null; list columns (`categories`) are
  `|`-joined strings.
- Parquet: one record per row; list columns arrive as lists.

Each record leaves as a `SourceRecord` holding the file, the 1-based line number (for CSV the
line where the record starts, for Parquet the row number), the raw text and the decoded dict. A
line that cannot be decoded (not UTF-8, not JSON, a malformed CSV record) still leaves as a
`SourceRecord`, with `record=None` and the reason in `error`, so the caller can dead-letter it.
A file that cannot be read at all (corrupt or truncated gzip, a broken Parquet footer, a bad CSV
header) fails the job with an `InputFileError` naming the file: never a silent partial read.

Files are read streaming, so memory stays flat in the file size (Parquet: one row group at a
time). Compressed files, CSV and Parquet are read whole, each by one worker; plain JSON Lines
files larger than `read_ranges.RANGE_BYTES` are read in byte ranges by several workers at once,
with exact line numbers (`beam_jobs.read_ranges`).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import zlib
from collections.abc import Iterator
from typing import IO, Any, NamedTuple

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io import fileio
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs import fields

#: Values of `input_format`.
FORMAT_JSONL = "jsonl"
FORMAT_CSV = "csv"
FORMAT_PARQUET = "parquet"
FORMAT_AUTO = "auto"
INPUT_FORMATS = (FORMAT_JSONL, FORMAT_CSV, FORMAT_PARQUET, FORMAT_AUTO)
#: How `FORMAT_AUTO` picks the format, from the file name without its compression suffix.
FORMAT_BY_EXTENSION = {
    ".jsonl": FORMAT_JSONL,
    ".ndjson": FORMAT_JSONL,
    ".json": FORMAT_JSONL,
    ".csv": FORMAT_CSV,
    ".parquet": FORMAT_PARQUET,
}
GZIP_SUFFIX = ".gz"
#: Rows per batch read from Parquet; bounds the memory of one step.
PARQUET_BATCH_ROWS = 1024

_BOM = "\ufeff"
# Outcome kinds the decoders report; each is a metrics counter of the source's namespace.
READ = "records_read"
BLANK = "blank_lines_skipped"
NOT_UTF8 = "dead_letter_not_utf8"
INVALID_JSON = "dead_letter_invalid_json"
NOT_AN_OBJECT = "dead_letter_not_an_object"
INVALID_CSV = "dead_letter_invalid_csv"


class RecordBatch(list):
    """A batch of records (`SourceRecord`s or `parse.SourcedRow`s) passed between steps.

    A list subclass on purpose: Beam's FastPrimitivesCoder encodes a plain list element by
    element and pickles every NamedTuple in it separately (also when it samples element
    sizes), while an unknown type is pickled in one call, about 5x cheaper per record.
    """


class InputFileError(OSError):
    """A whole input file cannot be read; the message names the file and the fix."""


class SourceRecord(NamedTuple):
    """One record as read, before validation.

    Attributes:
      file: Path of the input file.
      line: 1-based line number (CSV: the record's first line; Parquet: the row number).
      raw: The record as text: the line (CSV: its lines) without the final line break, or for
        Parquet a JSON rendering of the row.
      record: The decoded record keyed by source column name; None when undecodable.
      error: Why the record could not be decoded (a dead-letter reason); "" when decoded.
    """

    file: str
    line: int
    raw: str
    record: dict[str, Any] | None
    error: str = ""


def check_format(input_format: str) -> None:
    """Raises ValueError naming `input_format` unless it is one of `INPUT_FORMATS`."""
    if input_format not in INPUT_FORMATS:
        raise ValueError(
            f"input_format={input_format!r} is not one of {', '.join(INPUT_FORMATS)}; "
            f"'{FORMAT_AUTO}' picks each file's format from its extension"
        )


def resolve_format(path: str, input_format: str) -> str:
    """Returns the format to read `path` with: `input_format`, or for "auto" the extension's.

    Raises:
      ValueError: `input_format` is not one of `INPUT_FORMATS`, or is "auto" and the file name
        (without `.gz`) has no extension of `FORMAT_BY_EXTENSION`.
    """
    check_format(input_format)
    if input_format != FORMAT_AUTO:
        return input_format
    name = path.removesuffix(GZIP_SUFFIX)
    for extension, found in FORMAT_BY_EXTENSION.items():
        if name.endswith(extension):
            return found
    raise ValueError(
        f"cannot tell the format of {path!r} from its extension (known: "
        f"{', '.join(FORMAT_BY_EXTENSION)}, optionally + {GZIP_SUFFIX}); rename the file or set "
        f"the input format to one of {', '.join(INPUT_FORMATS[:-1])}"
    )


def decode_json_line(file: str, line: int, data: bytes) -> tuple[str, SourceRecord]:
    """Decodes one JSON Lines line (without its line break) into `(outcome kind, record)`."""
    try:
        raw = data.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError as e:
        raw = data.decode("utf-8", errors="replace")
        return NOT_UTF8, _undecodable(file, line, raw, _not_utf8(e))
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as e:
        return INVALID_JSON, _undecodable(file, line, raw, f"invalid JSON: {e}")
    if not isinstance(record, dict):
        reason = f"expected a JSON object, got {fields.json_type_name(record)}"
        return NOT_AN_OBJECT, _undecodable(file, line, raw, reason)
    return READ, SourceRecord(file, line, raw, record)


def _undecodable(file: str, line: int, raw: str, reason: str) -> SourceRecord:
    return SourceRecord(file, line, raw, None, reason)


def _not_utf8(e: UnicodeDecodeError) -> str:
    return f"line is not UTF-8 ({e.reason} at byte {e.start})"


def _strip_line_break(data: bytes) -> bytes:
    return data.removesuffix(b"\n").removesuffix(b"\r")


def _numbered_lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Yields `(1-based number, line bytes with their line break)`, one line in memory at a time."""
    yield from enumerate(iter(stream.readline, b""), start=1)


def _read_jsonl(stream: IO[bytes], file: str) -> Iterator[tuple[str, SourceRecord | None]]:
    for number, data in _numbered_lines(stream):
        data = _strip_line_break(data)
        if not data.strip():
            yield BLANK, None
        else:
            yield decode_json_line(file, number, data)


def _read_csv(stream: IO[bytes], file: str) -> Iterator[tuple[str, SourceRecord | None]]:
    """Yields the records of a CSV file; the first non-blank record is the header."""
    pending: list[tuple[int, bytes]] = []  # The lines of the record being parsed.

    def text_lines() -> Iterator[str]:
        for number, data in _numbered_lines(stream):
            pending.append((number, data))
            # surrogateescape: a line that is not UTF-8 must cost one dead letter, not the file.
            yield data.decode("utf-8", errors="surrogateescape").removeprefix(_BOM)

    reader = csv.reader(text_lines(), strict=True)
    header: list[str] | None = None
    while True:
        try:
            values, error = next(reader), ""
        except StopIteration:
            return
        except csv.Error as e:
            values, error = [], f"invalid CSV: {e}"
        line, data = pending[0][0], _strip_line_break(b"".join(d for _, d in pending))
        pending.clear()
        try:
            raw = data.decode("utf-8").removeprefix(_BOM)
        except UnicodeDecodeError as e:
            if header is None:
                raise InputFileError(f"the CSV header of {file} is not UTF-8: {e}") from None
            yield NOT_UTF8, _undecodable(file, line, data.decode("utf-8", "replace"), _not_utf8(e))
            continue
        if error:
            yield INVALID_CSV, _undecodable(file, line, raw, error)
        elif not raw.strip():
            yield BLANK, None
        elif header is None:
            header = _csv_header(values, file)
        elif len(values) != len(header):
            reason = (
                f"invalid CSV: the record has {len(values)} fields but the header has "
                f"{len(header)} ({', '.join(header)})"
            )
            yield INVALID_CSV, _undecodable(file, line, raw, reason)
        else:
            record = {name: value or None for name, value in zip(header, values, strict=True)}
            yield READ, SourceRecord(file, line, raw, record)


def _csv_header(values: list[str], file: str) -> list[str]:
    names = [value.strip() for value in values]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if "" in names or repeated:
        raise InputFileError(
            f"the CSV header of {file} ({values!r}) has empty or repeated column names "
            f"{repeated}; the first row must name every column once"
        )
    return names


def _read_parquet(stream: IO[bytes], file: str) -> Iterator[tuple[str, SourceRecord | None]]:
    parquet = pq.ParquetFile(stream)
    number = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for record in batch.to_pylist():
            number += 1
            raw = json.dumps(record, ensure_ascii=False, default=str)
            yield READ, SourceRecord(file, number, raw, record)


_READERS = {FORMAT_JSONL: _read_jsonl, FORMAT_CSV: _read_csv, FORMAT_PARQUET: _read_parquet}


@contextlib.contextmanager
def _open(readable: fileio.ReadableFile) -> Iterator[IO[bytes]]:
    """Opens a matched file, decompressing by suffix (Beam's `CompressionTypes.AUTO`)."""
    if readable.metadata.path.endswith(GZIP_SUFFIX):
        # Python's gzip, not Beam's: Beam's reader ends a truncated gzip file silently.
        with (
            readable.open(compression_type=CompressionTypes.UNCOMPRESSED) as compressed,
            gzip.GzipFile(fileobj=compressed) as stream,
        ):
            yield stream
    else:
        with readable.open(compression_type=CompressionTypes.AUTO) as stream:
            yield stream


class ReadRecordsFn(beam.DoFn):
    """Reads one matched file (`fileio.ReadableFile`) whole and sequentially into
    `SourceRecord`s (or batches of them), so line numbers come from one pass. Large plain JSON
    Lines files are read by `read_ranges.ReadRangeFn` instead. Blank lines are counted and
    skipped.
    """

    def __init__(self, input_format: str, source: str, batch_size: int = 0) -> None:
        """Args:
        input_format: One of `INPUT_FORMATS`.
        source: Metrics namespace, e.g. `dead_letters.SOURCE_INTERACTIONS`.
        batch_size: 0 yields each `SourceRecord`; N > 0 yields lists of up to N of them, in
          file order (far less per-element overhead in the steps that follow).
        """
        super().__init__()
        self._input_format = input_format
        self._source = source
        self._batch_size = batch_size

    def setup(self) -> None:
        kinds = (READ, BLANK, NOT_UTF8, INVALID_JSON, NOT_AN_OBJECT, INVALID_CSV)
        self._counters = {kind: beam.metrics.Metrics.counter(self._source, kind) for kind in kinds}

    def process(self, readable: fileio.ReadableFile) -> Iterator[Any]:
        path = readable.metadata.path
        input_format = resolve_format(path, self._input_format)

        def outcomes() -> Iterator[tuple[str, SourceRecord | None]]:
            with _open(readable) as stream:
                yield from _READERS[input_format](stream, path)

        yield from self.emit(outcomes(), path, input_format)

    def emit(
        self, outcomes: Iterator[tuple[str, SourceRecord | None]], path: str, input_format: str
    ) -> Iterator[Any]:
        """Counts a reader's `(kind, record)` outcomes and yields the records (or batches).

        Raises:
          InputFileError: the file cannot be read; the message names it and the fix.
        """
        counts = dict.fromkeys(self._counters, 0)
        batch = RecordBatch()
        try:
            for kind, record in outcomes:
                counts[kind] += 1
                if record is None:
                    continue
                if not self._batch_size:
                    yield record
                    continue
                batch.append(record)
                if len(batch) == self._batch_size:
                    yield batch
                    batch = RecordBatch()
            if batch:
                yield batch
        except InputFileError:
            raise
        except (OSError, EOFError, zlib.error, pa.ArrowException) as e:
            raise InputFileError(
                f"cannot read {path} as {input_format}: {type(e).__name__}: {e}. The file is "
                "corrupt, truncated or not in that format; replace it or remove it from the "
                "input pattern"
            ) from e
        finally:
            for kind, count in counts.items():
                if count:
                    self._counters[kind].inc(count)


class ReadRecords(beam.PTransform):
    """Reads the files matching a glob into a PCollection of `SourceRecord`s.

    Applied to the pipeline. Checks when the graph is built that the glob matches files (and,
    for "auto", that each file's format is known), so a typo fails before the job runs.
    """

    def __init__(
        self, file_pattern: str, input_format: str, source: str, batch_size: int = 0
    ) -> None:
        """Args:
        file_pattern: File path or glob, local or `gs://...`.
        input_format: One of `INPUT_FORMATS`; "auto" picks per file by extension.
        source: Metrics namespace of the outcome counters.
        batch_size: 0 for one `SourceRecord` per element; N > 0 for lists of up to N.

        Raises:
          ValueError: `input_format` is not one of `INPUT_FORMATS`.
        """
        super().__init__()
        check_format(input_format)
        self._file_pattern = file_pattern
        self._input_format = input_format
        self._source = source
        self._batch_size = batch_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        from beam_jobs import read_ranges  # Imports this module.

        matches = FileSystems.match([self._file_pattern])[0].metadata_list
        if not matches:
            raise OSError(f"No files found matching {self._file_pattern!r}; check the path or glob")
        ranges = []
        for metadata in matches:
            input_format = resolve_format(metadata.path, self._input_format)
            if read_ranges.is_splittable(metadata.path, input_format, metadata.size_in_bytes):
                ranges.extend(read_ranges.split_file(metadata.path, metadata.size_in_bytes))
        split_paths = {r.path for r in ranges}
        in_ranges = None
        if ranges:
            in_ranges = pbegin | "ReadRanges" >> read_ranges.ReadFileRanges(
                ranges, self._source, self._batch_size
            )
        if len(split_paths) == len(matches):
            # Every file is read in ranges: no Flatten, so reading fuses with the steps that
            # follow instead of materializing every record between two stages.
            return in_ranges
        whole = (
            pbegin
            | "MatchFiles"
            >> fileio.MatchFiles(
                self._file_pattern, empty_match_treatment=fileio.EmptyMatchTreatment.DISALLOW
            )
            | "SkipSplitFiles" >> beam.Filter(lambda m, skip: m.path not in skip, split_paths)
            | "ReadMatches" >> fileio.ReadMatches()
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFiles"
            >> beam.ParDo(ReadRecordsFn(self._input_format, self._source, self._batch_size))
        )
        if in_ranges is None:
            return whole
        return (whole, in_ranges) | "AllRecords" >> beam.Flatten()
