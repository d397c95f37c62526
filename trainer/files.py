"""Small file helpers for run directories (local paths or gs:// through tf.io.gfile)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import tensorflow as tf


def write_json(path: str, payload: dict) -> None:
    """Writes `payload` as indented JSON (numpy scalars converted)."""
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=_to_builtin)


def read_json(path: str) -> Any:
    """Reads a JSON file."""
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def ensure_dir(path: str) -> str:
    """Creates `path` if missing; returns it."""
    tf.io.gfile.makedirs(path)
    return path


def _to_builtin(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
