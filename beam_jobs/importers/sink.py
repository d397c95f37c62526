"""Where importers write: the contract's two JSON Lines files plus a file of rejected rows.

An importer streams each source file through `ImportSink.import_file` with a per-line parse
function. The function returns the converted row (a dict keyed by `recstack.features` names) or
raises `Rejected`; the sink writes the row to the interactions or catalog file and the rejected
line, with file, line number, raw text, reason code and detail, to `REJECTS_FILE`. Nothing is
dropped silently: for every import, `rows_read = interactions_written + items_written +
rejected`, which `ImportSink.summary` checks.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from types import TracebackType
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from beam_jobs.importers.rows import REASON_BAD_ENCODING, Rejected
from beam_jobs.importers.source_files import read_lines
from recstack import features

#: Rejected source rows, one JSON object per line, written beside the contract files.
REJECTS_FILE = "import_rejects.jsonl"
#: Values of `import_file`'s `kind`: which contract file the parsed rows go to.
KIND_INTERACTIONS = "interactions"
KIND_ITEMS = "items"
_BOM = "\ufeff"

#: A per-line parse function: decoded line (no line break) -> contract row, or raises Rejected.
ParseLine = Callable[[str], dict[str, Any]]


class ImportSink:
    """Writes contract rows and rejects under one output directory, counting every outcome.

    Use as a context manager; the files are created (or overwritten) on entry:

        with ImportSink(output_dir) as sink:
            sink.import_file(path, KIND_INTERACTIONS, parse_rating, encoding="latin-1")
            summary = sink.summary("movielens-1m")
    """

    def __init__(self, output_dir: str, progress: bool = True):
        """Args:
        output_dir: Directory (local or `gs://`) that receives `features.RAW_INTERACTIONS_FILE`,
          `features.RAW_ITEMS_FILE` and `REJECTS_FILE`.
        progress: Show a progress bar while reading each source file.
        """
        self.paths = {
            KIND_INTERACTIONS: FileSystems.join(output_dir, features.RAW_INTERACTIONS_FILE),
            KIND_ITEMS: FileSystems.join(output_dir, features.RAW_ITEMS_FILE),
            "rejects": FileSystems.join(output_dir, REJECTS_FILE),
        }
        self._progress = progress
        self._files: dict[str, Any] = {}
        self._written = {KIND_INTERACTIONS: 0, KIND_ITEMS: 0}
        self._rows_read = 0
        self._rejects: collections.Counter[str] = collections.Counter()

    def __enter__(self) -> ImportSink:
        for name, path in self.paths.items():
            self._files[name] = FileSystems.create(
                path, mime_type="application/jsonl", compression_type=CompressionTypes.UNCOMPRESSED
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()

    def import_file(
        self,
        path: str,
        kind: str,
        parse: ParseLine,
        encoding: str = "utf-8",
        header: str | None = None,
    ) -> None:
        """Converts every non-blank line of `path` with `parse` and writes rows or rejects.

        Blank lines are not rows and are skipped uncounted; a UTF-8 byte-order mark is dropped.

        Args:
          path: Source file, local or `gs://`, `.gz` for gzip.
          kind: `KIND_INTERACTIONS` or `KIND_ITEMS`, the contract file the rows go to.
          parse: Turns one decoded line into a contract row or raises `Rejected`.
          encoding: The file's text encoding, e.g. "latin-1" for MovieLens 100K/1M.
          header: When set, the first non-blank line must equal it; it is not a row.

        Raises:
          ValueError: `kind` is unknown, or the header differs from `header` (wrong file).
          FileNotFoundError: `path` does not exist.
        """
        if kind not in self._written:
            raise ValueError(f"kind={kind!r}; use {KIND_INTERACTIONS!r} or {KIND_ITEMS!r}")
        expect_header = header
        for line in read_lines(path, self._progress):
            if not line.data.strip():
                continue
            if expect_header is not None:
                _check_header(path, _raw(line.data, encoding), expect_header)
                expect_header = None
                continue
            self._rows_read += 1
            try:
                row = parse(_decode(line.data, encoding))
            except Rejected as rejected:
                self._reject(path, line.number, _raw(line.data, encoding), rejected)
                continue
            self._write(kind, row)
        if expect_header is not None:
            raise ValueError(f"{path!r} is empty; expected the header line {header!r} and rows")

    def summary(self, layout: str) -> dict[str, Any]:
        """Returns the counts of this import and the paths written.

        Returns:
          Dict with "layout", "rows_read", "interactions_written", "items_written", "rejected"
          (total), "rejects" (count by reason code, sorted) and "outputs" (paths by kind:
          "interactions", "items", "rejects").

        Raises:
          RuntimeError: rows were lost (`rows_read != written + rejected`), a bug.
        """
        rejected = sum(self._rejects.values())
        written = sum(self._written.values())
        if self._rows_read != written + rejected:
            raise RuntimeError(
                f"import lost rows: read {self._rows_read}, wrote {written}, rejected {rejected}"
            )
        return {
            "layout": layout,
            "rows_read": self._rows_read,
            "interactions_written": self._written[KIND_INTERACTIONS],
            "items_written": self._written[KIND_ITEMS],
            "rejected": rejected,
            "rejects": dict(sorted(self._rejects.items())),
            "outputs": dict(self.paths),
        }

    def _write(self, kind: str, row: dict[str, Any]) -> None:
        self._files[kind].write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        self._written[kind] += 1

    def _reject(self, path: str, number: int, raw: str, rejected: Rejected) -> None:
        record = {
            "file": path,
            "line": number,
            "raw": raw,
            "reason": rejected.reason,
            "detail": rejected.detail,
        }
        self._files["rejects"].write((json.dumps(record, ensure_ascii=False) + "\n").encode())
        self._rejects[rejected.reason] += 1


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding).removeprefix(_BOM)
    except UnicodeDecodeError as e:
        detail = f"line is not {encoding} ({e.reason} at byte {e.start})"
        raise Rejected(REASON_BAD_ENCODING, detail) from None


def _raw(data: bytes, encoding: str) -> str:
    """The line as text for messages and rejects, undecodable bytes replaced."""
    return data.decode(encoding, errors="replace").removeprefix(_BOM)


def _check_header(path: str, text: str, header: str) -> None:
    if text.strip() != header:
        raise ValueError(
            f"{path!r} starts with {text.strip()[:200]!r}, expected the header {header!r}; "
            "pass the file of that layout (or pick the layout that matches this file)"
        )
