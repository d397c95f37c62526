"""File operations on local paths and URLs (`gs://...`), without importing TensorFlow for local
ones.

Every pipeline step is a fresh process; the light ones (fingerprint, resolver, schema,
validation, push) would spend most of their time importing TensorFlow just for `tf.io.gfile`.
Model base paths (`<model>/<version>/`) are listed here too, for export, push and evaluation.
Local paths (including Vertex AI's `/gcs/` mount) use the standard library; URLs go through
`tf.io.gfile`, imported on first use.
"""

from __future__ import annotations

import glob as globlib
import json
import os
import shutil
from typing import IO, Any


def is_url(path: str) -> bool:
    """True for `scheme://...` paths (handled by `tf.io.gfile`)."""
    return "://" in path


def _gfile():
    import tensorflow as tf

    return tf.io.gfile


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_url(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _gfile().isdir(path) if is_url(path) else os.path.isdir(path)


def makedirs(path: str) -> None:
    if is_url(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def listdir(path: str) -> list[str]:
    """Entry names (without trailing slashes)."""
    if is_url(path):
        return [name.rstrip("/") for name in _gfile().listdir(path)]
    return os.listdir(path)


def glob(pattern: str) -> list[str]:
    """Sorted matches of `pattern`."""
    return sorted(_gfile().glob(pattern) if is_url(pattern) else globlib.glob(pattern))


def stat(path: str) -> tuple[int, int]:
    """(size in bytes, modification time in nanoseconds)."""
    if is_url(path):
        info = _gfile().stat(path)
        return info.length, info.mtime_nsec
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def open_file(path: str, mode: str = "r") -> IO:
    """An open file object (text modes are UTF-8)."""
    if is_url(path):
        return _gfile().GFile(path, mode)
    return open(path, mode, encoding=None if "b" in mode else "utf-8")  # noqa: SIM115


def rename(source: str, target: str, overwrite: bool = False) -> None:
    """Renames `source` to `target` (a directory too); atomic on a local file system."""
    if is_url(source) or is_url(target):
        _gfile().rename(source, target, overwrite=overwrite)
    elif overwrite:
        os.replace(source, target)
    else:
        if os.path.exists(target):
            raise FileExistsError(f"{target} exists")
        os.rename(source, target)


def read_json(path: str) -> Any:
    with open_file(path) as f:
        return json.load(f)


def write_json(path: str, payload: Any) -> None:
    """Writes `payload` as indented JSON, atomically (a temporary file renamed into place)."""
    makedirs(os.path.dirname(path) or ".")
    staging = f"{path}.tmp-{os.getpid()}"
    with open_file(staging, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
    rename(staging, path, overwrite=True)


def copy_tree(source: str, target: str) -> None:
    """Copies directory `source` to `target`."""
    if not (is_url(source) or is_url(target)):
        shutil.copytree(source, target, dirs_exist_ok=True)
        return
    gfile = _gfile()
    for directory, _, names in gfile.walk(source):
        destination = os.path.normpath(os.path.join(target, os.path.relpath(directory, source)))
        gfile.makedirs(destination)
        for name in names:
            gfile.copy(os.path.join(directory, name), os.path.join(destination, name), True)


def versions(model_dir: str) -> list[int]:
    """The numeric version directories under `model_dir`, ascending ([] when it is missing)."""
    if not isdir(model_dir):
        return []
    return sorted(int(name) for name in listdir(model_dir) if name.isdigit())


def next_version(model_dir: str) -> int:
    """1 + the highest numeric version directory under `model_dir` (1 when there is none)."""
    return max(versions(model_dir), default=0) + 1
