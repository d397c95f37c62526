"""Reads back TensorBoard event files: which tags a run wrote, and its scalar values.

Meant for tests and for quick checks of a run directory ("did the run log what TensorBoard
needs?") without starting TensorBoard. A *run* is a directory holding `events.out.tfevents.*`
files, named by its path relative to the directory that was read (`"."` for that directory
itself), the same way TensorBoard names runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

EVENT_FILE_PREFIX = "events.out.tfevents"


def iter_summary_values(log_dir: str) -> Iterator[tuple[str, int, tf.compat.v1.Summary.Value]]:
    """Every summary value under `log_dir`, searched recursively.

    Event files of a run are read in name order (their names start with the creation time),
    records in file order.

    Args:
      log_dir: Directory to search (e.g. a run's `tensorboard/` directory).

    Yields:
      `(run, step, value)`: the run directory relative to `log_dir`, the step the summary was
      written at, and the `Summary.Value` proto (tag, metadata with the plugin name and data,
      and a `simple_value`, `tensor` or other payload).

    Raises:
      FileNotFoundError: `log_dir` does not exist.
      tf.errors.DataLossError: an event file is truncated (its writer is still open; close
        or flush it before reading).
    """
    if not tf.io.gfile.isdir(log_dir):
        raise FileNotFoundError(
            f"log_dir={log_dir!r} is not a directory; pass a TensorBoard log dir"
        )
    for directory, _, names in sorted(tf.io.gfile.walk(log_dir)):
        run = os.path.relpath(directory, log_dir)
        for name in sorted(n for n in names if n.startswith(EVENT_FILE_PREFIX)):
            for record in tf.data.TFRecordDataset(os.path.join(directory, name)):
                event = tf.compat.v1.Event.FromString(record.numpy())
                for value in event.summary.value:
                    yield run, event.step, value


def read_tags(log_dir: str) -> dict[str, set[str]]:
    """The summary tags of every run under `log_dir`, plugin tags included.

    Scalars, histograms, images and the hparams plugin's `_hparams_/experiment` and
    `_hparams_/session_start_info` all appear under the tag they were written with.

    Args:
      log_dir: Directory to search recursively.

    Returns:
      `{run: {tag, ...}}`; runs are directories relative to `log_dir` (`"."` for itself),
      e.g. `{"train": {"learning_rate", "losses/loss"}, "hparams": {"_hparams_/experiment"}}`.
    """
    tags: dict[str, set[str]] = {}
    for run, _, value in iter_summary_values(log_dir):
        tags.setdefault(run, set()).add(value.tag)
    return tags


def read_scalars(log_dir: str) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """The scalar summaries of every run under `log_dir`.

    Reads both TF2 scalars (`tf.summary.scalar`: a rank-0 tensor with plugin `scalars`) and
    TF1 `simple_value` summaries; other plugins' values (histograms, hparams) are skipped.

    Args:
      log_dir: Directory to search recursively.

    Returns:
      `{run: {tag: [(step, value), ...]}}`, values in the order they were written.
    """
    scalars: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run, step, value in iter_summary_values(log_dir):
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            number = value.simple_value
        elif kind == "tensor" and value.metadata.plugin_data.plugin_name == "scalars":
            number = float(np.asarray(tf.make_ndarray(value.tensor)))
        else:
            continue
        scalars.setdefault(run, {}).setdefault(value.tag, []).append((step, number))
    return scalars
