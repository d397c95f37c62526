"""The registry of dataset layouts: detect a layout from its files, import by layout name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from apache_beam.io.filesystems import FileSystems

from beam_jobs.importers import amazon, movielens
from beam_jobs.importers.source_files import file_exists


@dataclasses.dataclass(frozen=True)
class Layout:
    """One supported dataset layout.

    Attributes:
      name: Layout name used by `import_dataset` and the CLI's `--layout`.
      files: The files that identify the layout, as shown in messages.
      datasets: The public datasets published in this layout.
      importer: `(directory, output_dir, progress) -> summary`, for directory layouts; None for
        Amazon, whose files are passed explicitly.
    """

    name: str
    files: tuple[str, ...]
    datasets: str
    importer: Callable[[str, str, bool], dict[str, Any]] | None


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            movielens.LAYOUT_100K,
            movielens.FILES_100K,
            "MovieLens 100K",
            movielens.import_movielens_100k,
        ),
        Layout(
            movielens.LAYOUT_1M,
            movielens.FILES_1M,
            "MovieLens 1M, 10M",
            movielens.import_movielens_1m,
        ),
        Layout(
            movielens.LAYOUT_CSV,
            movielens.FILES_CSV,
            "MovieLens 20M, 25M, 32M, ml-latest, ml-latest-small",
            movielens.import_movielens_csv,
        ),
        Layout(
            amazon.LAYOUT,
            ("<name>.jsonl[.gz]", f"{amazon.META_PREFIX}<name>.jsonl[.gz]"),
            "Amazon reviews 2018 and 2023",
            None,
        ),
    )
}


def _expected_files() -> str:
    return "; ".join(f"{name}: {' + '.join(layout.files)}" for name, layout in LAYOUTS.items())


def detect_layout(path: str) -> str:
    """Names the layout of the dataset directory `path` from the files it holds.

    Args:
      path: Dataset directory, local or `gs://` (e.g. the unpacked `ml-25m`).

    Returns:
      A key of `LAYOUTS`: "movielens-100k", "movielens-1m", "movielens-csv" or "amazon".

    Raises:
      ValueError: no layout or several layouts match; the message lists each layout's files.
    """
    matches = [
        layout.name
        for layout in LAYOUTS.values()
        if layout.importer is not None
        and all(file_exists(FileSystems.join(path, name)) for name in layout.files)
    ]
    if amazon.amazon_pairs(path):
        matches.append(amazon.LAYOUT)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(
            f"{path!r} holds the files of several layouts ({', '.join(matches)}); pass --layout "
            "to choose one"
        )
    raise ValueError(
        f"cannot tell the dataset layout of {path!r}: expected the files of one of "
        f"{_expected_files()}; point --source at the unpacked dataset directory"
    )


def _amazon_files(source: str | dict[str, str]) -> dict[str, str]:
    if isinstance(source, str):
        return amazon.find_amazon_files(source)
    if not isinstance(source, dict) or set(source) != {"reviews", "metadata"}:
        raise ValueError(
            f"Amazon source {source!r} must be a directory or a dict with exactly the keys "
            "'reviews' and 'metadata' (paths of the two JSONL files)"
        )
    return source


def import_dataset(
    layout: str,
    source: str | dict[str, str],
    output_dir: str,
    progress: bool = True,
) -> dict[str, Any]:
    """Converts a public dataset into the data contract's JSON Lines files.

    Writes `features.RAW_INTERACTIONS_FILE`, `features.RAW_ITEMS_FILE` and
    `sink.REJECTS_FILE` under `output_dir`, ready for `recstack ingest`.

    Args:
      layout: A key of `LAYOUTS`, or "auto": `detect_layout` of a directory `source`, "amazon"
        for a dict `source`.
      source: The dataset directory (local or `gs://`); for "amazon" either a directory holding
        one `<name>` / `meta_<name>` pair or `{"reviews": path, "metadata": path}`.
      output_dir: Output directory, local or `gs://`; existing contract files are overwritten.
      progress: Show progress bars while reading.

    Returns:
      The summary: "layout", "rows_read", "interactions_written", "items_written", "rejected",
      "rejects" (count by reason code) and "outputs" (paths written).

    Raises:
      ValueError: unknown layout, a source of the wrong form, or a malformed header.
      FileNotFoundError: a file the layout needs is missing.
    """
    if layout == "auto":
        # Only Amazon takes its files explicitly, so a dict source can only be Amazon.
        layout = amazon.LAYOUT if isinstance(source, dict) else detect_layout(source)
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; use one of {', '.join(LAYOUTS)} or 'auto'")
    if layout == amazon.LAYOUT:
        files = _amazon_files(source)
        return amazon.import_amazon(files["reviews"], files["metadata"], output_dir, progress)
    if not isinstance(source, str):
        raise ValueError(
            f"layout {layout!r} reads a dataset directory; got source {source!r}, pass the path "
            f"of the directory holding {' and '.join(LAYOUTS[layout].files)}"
        )
    importer = LAYOUTS[layout].importer
    assert importer is not None  # Only Amazon has none, handled above.
    return importer(source, output_dir, progress)
