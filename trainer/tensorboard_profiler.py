"""Profiler trace of a window of training steps, for TensorBoard's Profile tab.

Built on `tf.profiler.experimental.start/stop` rather than `tf_keras.callbacks.TensorBoard`'s
`profile_batch`: that callback also writes its own scalars, graph and `train/` run, so using it
only for the trace means configuring most of it away, and it stops a trace left open at the end
of training only as a side effect of its other duties. Here the window is the whole callback,
it writes nothing when disabled, and starting the profiler when another one is running says so.
"""

from __future__ import annotations

import logging

import tensorflow as tf
import tf_keras

log = logging.getLogger(__name__)


class ProfilerWindow(tf_keras.callbacks.Callback):
    """Traces training steps `start_step..end_step` (inclusive) into `<log_dir>/plugins/profile`.

    Steps are counted from 1 within each `fit` call, like `profile_batch`: the trace should
    skip the first steps of *this process* (tracing and autotuning), which a resumed run's
    global step would not. The profiler writes `plugins/profile/<timestamp>/<host>.xplane.pb`
    when the window ends, or when training ends inside it.

    A trace of a step needs the step to be finished, so the window is closed after its last
    step's `on_train_batch_end`. With `steps_per_execution > 1` the trace covers whole
    executions: from the first one holding `start_step` to the one holding `end_step`.

    If `fit` raises inside the window, Keras calls no `on_train_end` and the profiler stays
    on; `tf.profiler.experimental.stop()` ends it.
    """

    def __init__(self, log_dir: str, window: tuple[int, int] | None) -> None:
        """Creates the callback.

        Args:
          log_dir: TensorBoard directory of the run (e.g. `<run_dir>/tensorboard/train`).
          window: `(start_step, end_step)`, 1-based and inclusive, e.g. `(10, 15)`; None
            disables the callback (it then does nothing at all).

        Raises:
          ValueError: the window is not `1 <= start_step <= end_step`.
        """
        super().__init__()
        if window is not None:
            start_step, end_step = window
            if not 1 <= start_step <= end_step:
                raise ValueError(
                    f"window={window} must be (start_step, end_step) with "
                    "1 <= start_step <= end_step, or None to disable profiling"
                )
        self.log_dir = log_dir
        self.window = window
        self._step = 0  # Steps finished in this fit.
        self._epoch_start_step = 0
        self._call_first_batch = 0
        self._steps_per_call = 1
        self._tracing = False

    @property
    def enabled(self) -> bool:
        """Whether a window was given."""
        return self.window is not None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._step = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_start_step = self._step

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        # With `steps_per_execution` one call runs several steps: `batch` is the 0-based index
        # in the epoch of its first one. The call is assumed as long as the previous one.
        self._call_first_batch = batch
        if not self.enabled or self._tracing:
            return
        first = self._epoch_start_step + batch + 1
        if first <= self.window[1] and first + self._steps_per_call - 1 >= self.window[0]:
            self._start()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._steps_per_call = batch - self._call_first_batch + 1
        self._step = self._epoch_start_step + batch + 1
        if self._tracing and self._step >= self.window[1]:
            self._stop()

    def on_train_end(self, logs: dict | None = None) -> None:
        if self._tracing:
            log.info("training ended inside the profiler window %s; stopping it", self.window)
            self._stop()

    def _start(self) -> None:
        try:
            tf.profiler.experimental.start(self.log_dir)
        except tf.errors.AlreadyExistsError as error:
            raise RuntimeError(
                f"cannot profile steps {self.window}: another profiler is running (a "
                "tf_keras.callbacks.TensorBoard with profile_batch, or a trace left on by a "
                "failed fit); disable one, or call tf.profiler.experimental.stop()"
            ) from error
        self._tracing = True

    def _stop(self) -> None:
        tf.profiler.experimental.stop()
        self._tracing = False
        log.info("profiled steps %s into %s/plugins/profile", self.window, self.log_dir)
