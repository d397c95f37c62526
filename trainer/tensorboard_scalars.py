"""Training-loop scalars for TensorBoard: learning rate, throughput and the losses in `logs`."""

from __future__ import annotations

import time
from collections.abc import Mapping

import tensorflow as tf
import tf_keras

LEARNING_RATE_TAG = "learning_rate"
EXAMPLES_PER_SECOND_TAG = "examples_per_second"
LOSS_PREFIX = "losses/"
EPOCH_PREFIX = "epoch/"


class TrainingScalars(tf_keras.callbacks.Callback):
    """Writes the learning rate, examples per second and losses every N steps and every epoch.

    Step summaries are written at the *global step*, `optimizer.iterations` after the batch
    (1 after the first update; it carries on across a resumed run), whenever at least
    `every_n_steps` updates were made since the last write:
      `learning_rate`        the optimizer's rate at that step: the constant, or a
                             `LearningRateSchedule` evaluated at the step (the rate of the
                             next update, as `tf_keras.callbacks.TensorBoard` logs it).
      `examples_per_second`  examples of the steps since the last write (or since the epoch
                             began) divided by the wall time they took.
      `losses/<key>`         every entry of the batch `logs` whose key ends in `loss`
                             (`loss`, `retrieval_loss`, `ranking_loss`,
                             `regularization_loss`, ...), as Keras reports it: TFRS models
                             report the batch's own loss, `compile(loss=...)` models the mean
                             over the epoch so far.
    Epoch summaries use the same names under `epoch/` (`epoch/learning_rate`,
    `epoch/examples_per_second`, `epoch/losses/loss`) at step `epoch + 1`, the step the
    evaluation callbacks use, with the epoch-end `logs` and the throughput of the whole epoch.

    Examples are counted as `batch_size * steps` when `batch_size` (the global batch, over
    all replicas) is given. Otherwise they are counted from the data: wrap the training
    dataset with `count_examples` (a last batch smaller than the others is then counted
    exactly). With `steps_per_execution > 1` Keras calls back once per execution, so step
    summaries land on execution boundaries (every 3rd step for 3 steps per execution).
    """

    def __init__(self, log_dir: str, every_n_steps: int = 100, batch_size: int | None = None):
        """Creates the callback; the summary writer is opened when training begins.

        Args:
          log_dir: Directory of the event files (e.g. `<run_dir>/tensorboard/train`).
          every_n_steps: Optimizer updates between two writes of the step summaries.
          batch_size: Examples per step. None counts them from the dataset passed through
            `count_examples`.

        Raises:
          ValueError: `every_n_steps` or `batch_size` is below 1.
        """
        super().__init__()
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps} must be at least 1")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be at least 1, or None to count")
        self.log_dir = log_dir
        self.every_n_steps = every_n_steps
        self.batch_size = batch_size
        self._counter: tf.Variable | None = None
        self._writer: tf.summary.SummaryWriter | None = None
        self._window = _Throughput()
        self._epoch = _Throughput()
        self._last_written_step = 0

    def count_examples(self, dataset: tf.data.Dataset) -> tf.data.Dataset:
        """`dataset` with each batch's size added to this callback's example counter.

        Apply it last, after batching and `prefetch`: the counting step runs when training
        takes a batch (tf.data's automatic prefetch injection is turned off for it), so the
        count of a window of steps is exact.

        The counter lives on this host: under a multi-worker strategy each worker counts its
        own share, so pass the global `batch_size` there instead.

        Args:
          dataset: Batched dataset of tensors, or dicts/tuples of tensors, of shape
            `[batch_size, ...]`; the first leaf's leading dimension is the batch size.

        Returns:
          The same elements, counted as they are taken.

        Raises:
          ValueError: the callback was given a `batch_size`, so it does not count.
        """
        if self.batch_size is not None:
            raise ValueError(
                f"batch_size={self.batch_size} was given, so examples are not counted; pass "
                "batch_size=None to count them from the dataset"
            )
        if self._counter is None:
            self._counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="examples")
        counter = self._counter

        def count(*batch):
            size = tf.shape(tf.nest.flatten(batch)[0], out_type=tf.int64)[0]
            with tf.control_dependencies([counter.assign_add(size)]):
                batch = tf.nest.map_structure(tf.identity, batch)
            return batch if len(batch) > 1 else batch[0]

        options = tf.data.Options()
        options.experimental_optimization.inject_prefetch = False
        return dataset.map(count).with_options(options)

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.batch_size is None and self._counter is None:
            raise ValueError(
                "TrainingScalars has no batch size: pass batch_size=... or wrap the training "
                "dataset with callback.count_examples(dataset)"
            )
        self._writer = tf.summary.create_file_writer(self.log_dir)
        self._last_written_step = self._global_step()

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._window.start(self._examples())
        self._epoch.start(self._examples())

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = self._global_step()
        if step - self._last_written_step < self.every_n_steps:
            return
        self._write(step, "", self._window.rate(self._examples()), logs or {})
        self._window.start(self._examples())
        self._last_written_step = step

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        rate = self._epoch.rate(self._examples())
        self._write(epoch + 1, EPOCH_PREFIX, rate, logs or {})

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write(self, step: int, prefix: str, examples_per_second: float, logs: Mapping) -> None:
        with self._writer.as_default(step=step):
            tf.summary.scalar(prefix + LEARNING_RATE_TAG, learning_rate_at(self.model.optimizer))
            tf.summary.scalar(prefix + EXAMPLES_PER_SECOND_TAG, examples_per_second)
            for key, value in logs.items():
                if key.endswith("loss"):
                    tf.summary.scalar(prefix + LOSS_PREFIX + key, value)
        self._writer.flush()

    def _global_step(self) -> int:
        return int(self.model.optimizer.iterations.numpy())

    def _examples(self) -> int:
        """Examples taken so far: counted, or `batch_size` per global step."""
        if self._counter is None:
            return self._global_step() * self.batch_size
        return int(self._counter.numpy())


class _Throughput:
    """Examples per second since the last `start`."""

    def __init__(self) -> None:
        self.start(0)

    def start(self, examples: int) -> None:
        self._examples, self._time = examples, time.perf_counter()

    def rate(self, examples: int) -> float:
        return (examples - self._examples) / (time.perf_counter() - self._time)


def learning_rate_at(optimizer: tf_keras.optimizers.Optimizer) -> float:
    """The learning rate `optimizer` uses for its next update.

    Args:
      optimizer: A tf_keras optimizer (current or `legacy`) with a float or a
        `LearningRateSchedule` learning rate.

    Returns:
      The constant rate, or the schedule evaluated at `optimizer.iterations`.
    """
    # tf_keras has no public accessor for the schedule of the current optimizers (their
    # `learning_rate` is the rate of the *last* update); its own TensorBoard callback reads
    # `_learning_rate` the same way.
    if isinstance(optimizer, tf_keras.optimizers.Optimizer):
        rate = getattr(optimizer, "_learning_rate", None)
    else:
        rate = getattr(optimizer, "lr", None)
    if isinstance(rate, tf_keras.optimizers.schedules.LearningRateSchedule):
        rate = rate(optimizer.iterations)
    if rate is None:
        raise ValueError(f"optimizer {optimizer!r} has no learning rate to log")
    return float(tf.convert_to_tensor(rate).numpy())
