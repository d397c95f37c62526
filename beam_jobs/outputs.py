"""Staged outputs: a job writes into a temporary sibling directory, renamed only on success.

A failed or interrupted run therefore never leaves a half-written output directory, and an
earlier output survives until the new one is complete. An output directory that already holds
files is replaced only when the caller says so (`--overwrite`).

Local directories are swapped with `os.rename` (atomic per directory). Other filesystems
(`gs://`, ...) have no directory rename, so there the files are renamed one by one through
Beam's `FileSystems` after the old output is deleted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator

from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

logger = logging.getLogger(__name__)

#: Infix of the temporary sibling directory a job writes into.
STAGING_INFIX = ".staging-"


class OutputExistsError(FileExistsError):
    """The output directory already holds files and overwriting was not requested."""


def _strip(path: str) -> str:
    return path.rstrip("/") or path


def list_files(directory: str) -> list[str]:
    """Returns the paths of the files directly in `directory` (empty when it does not exist)."""
    pattern = FileSystems.join(_strip(directory), "*")
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


def is_local(path: str) -> bool:
    """True when `path` is on the local filesystem (no scheme, or `file://`)."""
    return isinstance(FileSystems.get_filesystem(path), LocalFileSystem)


def check_writable(output_dir: str, overwrite: bool) -> None:
    """Checks that a job may write `output_dir`.

    Raises:
      OutputExistsError: `output_dir` holds files and `overwrite` is False; the message says
        how to proceed.
    """
    existing = list_files(output_dir)
    if existing and not overwrite:
        raise OutputExistsError(
            f"the output directory {output_dir} already holds {len(existing)} files (e.g. "
            f"{existing[0]}); pass --overwrite to replace them, or choose another directory"
        )


def staging_dir(output_dir: str) -> str:
    """Returns a fresh temporary sibling of `output_dir`, e.g. `out/data.staging-1a2b3c4d5e6f`."""
    return f"{_strip(output_dir)}{STAGING_INFIX}{uuid.uuid4().hex[:12]}"


def discard(staging: str) -> None:
    """Deletes the staging directory `staging` and everything in it, if it exists."""
    if is_local(staging):
        shutil.rmtree(staging, ignore_errors=True)
        return
    files = list_files(staging)
    if files:
        FileSystems.delete(files)


def publish(staging: str, output_dir: str) -> None:
    """Moves the files of `staging` into `output_dir`, replacing what it held.

    Locally the old directory is renamed aside, the staging directory renamed into place and
    the old one deleted, so `output_dir` is at every moment either the old or the new output.
    Elsewhere the old files are deleted and the new ones renamed one by one.

    Raises:
      ValueError: `staging` holds subdirectories (jobs write flat directories).
    """
    if is_local(staging):
        _publish_local(staging, output_dir)
    else:
        _publish_by_files(staging, output_dir)


def _publish_local(staging: str, output_dir: str) -> None:
    subdirs = [e.name for e in os.scandir(staging) if e.is_dir()]
    if subdirs:
        raise ValueError(f"staging directory {staging} holds subdirectories {subdirs}")
    output_dir = _strip(output_dir)
    aside = None
    if os.path.exists(output_dir):
        aside = f"{output_dir}.replaced-{uuid.uuid4().hex[:12]}"
        os.rename(output_dir, aside)
    os.rename(staging, output_dir)
    if aside is not None:
        shutil.rmtree(aside)


def _publish_by_files(staging: str, output_dir: str) -> None:
    old = list_files(output_dir)
    if old:
        FileSystems.delete(old)
    sources = list_files(staging)
    targets = [FileSystems.join(_strip(output_dir), FileSystems.split(p)[1]) for p in sources]
    if sources:
        FileSystems.rename(sources, targets)
    discard(staging)


@contextlib.contextmanager
def staged_output(output_dir: str, overwrite: bool) -> Iterator[str]:
    """Context for a job writing `output_dir`: yields the staging directory to write into.

    On normal exit the staging directory replaces `output_dir` (`publish`); on an exception it
    is deleted and `output_dir` is left as it was.

    Raises:
      OutputExistsError: on entry, when `output_dir` holds files and `overwrite` is False.
    """
    check_writable(output_dir, overwrite)
    staging = staging_dir(output_dir)
    if is_local(staging):
        os.makedirs(staging)
    try:
        yield staging
    except BaseException:
        logger.info("The job failed; deleting its partial output %s", staging)
        discard(staging)
        raise
    logger.info("Publishing %s as %s", staging, output_dir)
    publish(staging, output_dir)
