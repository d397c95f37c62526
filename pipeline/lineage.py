"""Lineage: fingerprints of the input data and of the code, and the run manifest.

The input fingerprint follows TFX ExampleGen's: the matched files with their sizes and
modification times, hashed, so new or rewritten logs give a new fingerprint (and re-run the
stages that read them) while untouched logs are not read at all. The code version hashes the
source of the project's packages, so a code change re-runs the steps it could affect.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from typing import Any

from recstack import fs

#: Packages whose source makes up the code version.
PACKAGES = ("recstack", "beam_jobs", "trainer", "serving", "pipeline", "evaluation")
MANIFEST_FILE = "manifest.json"


def list_inputs(patterns: Sequence[str]) -> list[dict[str, Any]]:
    """The files matched by `patterns` ("" entries skipped), sorted, each as
    `{"path", "bytes", "mtime_ns"}`.

    Raises:
      FileNotFoundError: a pattern matches no file.
    """
    files = []
    for pattern in filter(None, patterns):
        matched = fs.glob(pattern)
        if not matched:
            raise FileNotFoundError(f"no input file matches {pattern!r}")
        for path in matched:
            size, mtime_ns = fs.stat(path)  # (gfile rounds local mtimes to whole seconds)
            files.append({"path": path, "bytes": size, "mtime_ns": mtime_ns})
    return files


def fingerprint(files: list[dict[str, Any]]) -> str:
    """sha256 of a `list_inputs` listing (paths, sizes and modification times)."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def code_version(root: str | None = None) -> str:
    """sha256 over the relative paths and contents of every `.py` file of `PACKAGES` under
    `root` (default: the installed source tree)."""
    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    digest = hashlib.sha256()
    for package in PACKAGES:
        for directory, dirs, names in sorted(os.walk(os.path.join(root, package))):
            dirs.sort()
            for name in sorted(n for n in names if n.endswith(".py")):
                path = os.path.join(directory, name)
                with open(path, "rb") as f:
                    content = f.read()
                # Length-prefixed, so no two trees hash the same bytes.
                name = os.path.relpath(path, root).encode()
                digest.update(b"%d:%s%d:" % (len(name), name, len(content)))
                digest.update(content)
    return digest.hexdigest()


def git_revision(root: str | None = None) -> str:
    """The checkout's `git describe --always --dirty`, or "" outside a git checkout."""
    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        done = subprocess.run(
            ["git", "-C", root, "describe", "--always", "--dirty"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def write_manifest(run_dir: str, manifest: dict[str, Any]) -> str:
    """Writes `run_dir/manifest.json` (atomically); returns its path."""
    path = os.path.join(run_dir, MANIFEST_FILE)
    fs.write_json(path, manifest)
    return path


def read_manifest(run_dir: str) -> dict[str, Any]:
    """The manifest of a run directory."""
    return fs.read_json(os.path.join(run_dir, MANIFEST_FILE))
