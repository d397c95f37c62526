"""A run's hyperparameters and final metrics for TensorBoard's HParams dashboard.

The dashboard shows one row per run directory that holds a `_hparams_/session_start_info`
summary (written by `write_hparams`), with metric columns read from that directory's scalar
summaries (written by `write_final_metrics`, or by any callback into the directory a metric's
`group` names). Point TensorBoard at the parent of several run directories to compare runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

HParamValue = bool | int | float | str


def write_hparams(
    log_dir: str,
    hparams: Mapping[str, object],
    metrics: Sequence[str | hp.Metric],
    trial_id: str | None = None,
) -> dict[str, HParamValue]:
    """Writes the run's hyperparameters and the metrics the dashboard should show for it.

    Writes two summaries at step 0 into a new event file under `log_dir`:
    `_hparams_/experiment` (`hp.hparams_config`: the hyperparameter names and metric tags) and
    `_hparams_/session_start_info` (`hp.hparams`: this run's values).

    Args:
      log_dir: The run's TensorBoard directory, e.g. `<run_dir>/tensorboard`.
      hparams: The configuration, e.g. `TrainConfig.to_dict()`. Nested dicts are flattened
        with dotted names (`{"model": {"dim": 32}}` -> `model.dim`); lists and tuples become
        JSON strings (`(10, 50)` -> `"[10, 50]"`), None becomes `"None"` and numpy scalars
        Python ones, as the plugin only takes bool, number and string values.
      metrics: Metric tags to show as columns, looked up in `log_dir`'s scalars (see
        `write_final_metrics`); an `hp.Metric` can name another directory with `group`
        (e.g. `hp.Metric("recall_at_10", group="eval")` for `<log_dir>/eval`).
      trial_id: Name of the run in the dashboard; None uses a hash of the values.

    Returns:
      The flattened hyperparameters that were written.

    Raises:
      TypeError: a value is of another type (the message names its key).
      ValueError: `metrics` is empty.
    """
    if not metrics:
        raise ValueError("metrics is empty; name at least one metric tag, e.g. ['recall_at_10']")
    values = flatten_hparams(hparams)
    metric_infos = [m if isinstance(m, hp.Metric) else hp.Metric(m) for m in metrics]
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default():
        hp.hparams_config(hparams=[hp.HParam(name) for name in values], metrics=metric_infos)
        hp.hparams(values, trial_id=trial_id)
    writer.close()
    return values


def write_final_metrics(log_dir: str, metrics: Mapping[str, float], step: int) -> None:
    """Writes metric values as scalars, where the HParams dashboard looks for them.

    Args:
      log_dir: The directory given to `write_hparams`.
      metrics: `{tag: value}`, tags as passed to `write_hparams` (e.g. `{"recall_at_10": 0.2}`).
      step: Step of the values (e.g. the number of epochs trained); the dashboard shows the
        value of the latest step.

    Raises:
      TypeError: a value is not a number (the message names its tag).
    """
    writer = tf.summary.create_file_writer(log_dir)
    with writer.as_default(step=step):
        for tag, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise TypeError(f"metrics[{tag!r}]={value!r} is not a number; pass a float")
            tf.summary.scalar(tag, float(value))
    writer.close()


def flatten_hparams(hparams: Mapping[str, object], prefix: str = "") -> dict[str, HParamValue]:
    """`hparams` as one level of bool, int, float and str values (see `write_hparams`).

    Raises:
      TypeError: a value is of another type; convert it (e.g. `str(path)`) before logging.
    """
    flat: dict[str, HParamValue] = {}
    for key, value in hparams.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_hparams(value, prefix=f"{name}."))
        elif isinstance(value, np.generic):
            flat[name] = value.item()
        elif isinstance(value, bool | int | float | str):
            flat[name] = value
        elif isinstance(value, list | tuple):
            try:
                flat[name] = json.dumps(value)
            except TypeError as error:
                raise TypeError(
                    f"hparams[{name!r}]={value!r} holds a value JSON cannot encode ({error}); "
                    "convert its items to bool, int, float or str first"
                ) from error
        elif value is None:
            flat[name] = "None"
        else:
            raise TypeError(
                f"hparams[{name!r}] is a {type(value).__name__} ({value!r}); the HParams plugin "
                "takes bool, int, float, str, lists or nested dicts: convert it first"
            )
    return flat
