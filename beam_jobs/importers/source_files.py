"""Source files of a dataset: finding them in a directory and streaming their lines.

Paths may be local or `gs://`; a `.gz` suffix means gzip. Public datasets are large (MovieLens 25M
has 25 million rating lines), so files are never read whole: `read_lines` yields one line at a
time and shows a tqdm progress bar in bytes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import NamedTuple

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from tqdm import tqdm

#: Suffix that marks a gzip-compressed file; every other file is read as is.
GZIP_SUFFIX = ".gz"
#: Lines between two progress-bar refreshes (one refresh per line would slow 25M-line reads).
_PROGRESS_EVERY = 10_000


class Line(NamedTuple):
    """One physical line of a source file.

    Attributes:
      number: 1-based line number in the (decompressed) file.
      data: The line's bytes without the trailing `\\n` or `\\r\\n`, not yet decoded, so the
        caller can reject a line that is not in the file's encoding instead of failing.
    """

    number: int
    data: bytes


def compression_of(path: str) -> str:
    """Returns the Beam `CompressionTypes` value for `path`: GZIP for `.gz`, else UNCOMPRESSED."""
    if path.endswith(GZIP_SUFFIX):
        return CompressionTypes.GZIP
    return CompressionTypes.UNCOMPRESSED


def file_exists(path: str) -> bool:
    """True when `path` (local or `gs://`) names an existing file."""
    return FileSystems.exists(path)


def source_paths(directory: str, names: tuple[str, ...], layout: str) -> dict[str, str]:
    """Returns the path of each of `names` in `directory`, checking that all exist.

    Args:
      directory: Dataset directory, local or `gs://`.
      names: File names the layout needs, e.g. ("u.data", "u.item").
      layout: Layout name, for the message.

    Raises:
      FileNotFoundError: some of `names` are missing; the message lists them.
    """
    paths = {name: FileSystems.join(directory, name) for name in names}
    missing = [name for name, path in paths.items() if not file_exists(path)]
    if missing:
        raise FileNotFoundError(
            f"{directory!r} lacks {', '.join(missing)}, which the {layout!r} layout needs "
            f"({', '.join(names)}); point --source at the unpacked dataset directory or pick the "
            "layout matching its files"
        )
    return paths


def _size_in_bytes(path: str) -> int | None:
    """The file's size, the progress bar's total; None for compressed files (size unknown)."""
    if path.endswith(GZIP_SUFFIX):
        return None
    metadata = FileSystems.match([path])[0].metadata_list
    return metadata[0].size_in_bytes if metadata else None


def read_lines(path: str, progress: bool = True) -> Iterator[Line]:
    """Yields the lines of `path` one at a time, with a progress bar on stderr.

    Args:
      path: Local path or `gs://...` URL; a `.gz` suffix means gzip-compressed.
      progress: Show a tqdm progress bar (in bytes of decompressed data).

    Yields:
      `Line`s in file order, blank ones included (the caller decides what a blank line is).

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: `path` ends in `.gz` but is not gzip data.
    """
    if not file_exists(path):
        raise FileNotFoundError(f"source file {path!r} does not exist; check the path")
    bar = tqdm(
        total=_size_in_bytes(path),
        desc=path.rsplit("/", 1)[-1],
        unit="B",
        unit_scale=True,
        disable=not progress,
    )
    pending = 0
    try:
        with FileSystems.open(path, compression_type=compression_of(path)) as f:
            for number, data in enumerate(iter(f.readline, b""), start=1):
                pending += len(data)
                if number % _PROGRESS_EVERY == 0:
                    bar.update(pending)
                    pending = 0
                yield Line(number, data.rstrip(b"\r\n"))
    except zlib.error as e:
        raise ValueError(
            f"{path!r} ends in {GZIP_SUFFIX!r} but is not valid gzip data ({e}); decompress it "
            f"or remove the {GZIP_SUFFIX!r} suffix if it is plain text"
        ) from e
    finally:
        bar.update(pending)
        bar.close()
