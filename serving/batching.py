"""Server-side request batching, as TensorFlow Serving's `--enable_batching` does it.

Concurrent requests for the same (model, version, signature) are merged into one model call:
their input tensors are concatenated along axis 0 (the batch dimension), the model runs once,
and each output is split back along axis 0, so every caller gets exactly its own rows. A batch
starts when it holds `max_batch_size` rows, or `batch_timeout_micros` after its first request
arrived, whichever comes first; `num_batch_threads` threads run batches. The configuration is
TF Serving's `--batching_parameters_file` (a text `BatchingParameters`), so one file serves
both this server and the real one:

    batcher = Batcher(load_batching_parameters("serving/deploy/batching_parameters.txt"))
    outputs = batcher.submit(
        BatchKey(name, version, signature), inputs, lambda batch: model.run(signature, batch)
    )

Where this differs from TF Serving, on purpose:
- Requests whose tensors cannot be concatenated (other input names or dtypes; other trailing
  dims when `pad_variable_length_inputs` is off; with it on, other ranks, or an input with a
  zero-width dim, which has no value to pad with) run in separate batches. TF Serving fails
  the whole batch instead (FAILED_PRECONDITION, or "Got empty tensor in batch of non-empty
  tensors").
- `enable_large_batch_splitting` is not implemented: a file that turns it on is rejected at
  load, and requests larger than `max_batch_size` are rejected (INVALID_ARGUMENT), as TF
  Serving does without splitting.

Errors the server should turn into a status carry it as `BatchingError.code`
(`serving.batching_errors`). The parameters are `serving.batching_config`'s and the merging and
splitting of tensors `serving.batch_tensors`'; this module re-exports the config and the errors.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import NamedTuple

import numpy as np

from serving import batch_tensors
from serving.batching_config import BatchingConfig, load_batching_parameters
from serving.batching_errors import (
    BatcherClosedError,
    BatchingError,
    BatchInputError,
    BatchOutputError,
    BatchQueueFullError,
)

__all__ = [
    "BatchInputError",
    "BatchKey",
    "BatchOutputError",
    "BatchQueueFullError",
    "Batcher",
    "BatcherClosedError",
    "BatchingConfig",
    "BatchingError",
    "RunFn",
    "load_batching_parameters",
]

logger = logging.getLogger(__name__)

#: The model call of one batch: input name -> [rows, ...] array in, output name -> array out.
RunFn = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]


class BatchKey(NamedTuple):
    """Requests are batched together only when their keys are equal."""

    model: str
    version: int | None
    signature: str


@dataclasses.dataclass(eq=False)
class _Task:
    inputs: dict[str, np.ndarray]
    rows: int
    run: RunFn
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    outputs: dict[str, np.ndarray] | None = None
    # Replaced when the batch finishes; seen only if its thread died without finishing it.
    error: BaseException | None = dataclasses.field(
        default_factory=lambda: BatchingError("the batch thread stopped before the batch ran")
    )


@dataclasses.dataclass(eq=False)
class _Batch:
    layout: tuple
    deadline: float
    tasks: list[_Task] = dataclasses.field(default_factory=list)
    rows: int = 0
    closed: bool = False  # takes no more tasks; runs as soon as a thread is free


class Batcher:
    """Merges concurrent requests with the same key into single model calls (thread-safe).

    Args:
      config: Batch sizes, timeout, queue length and thread count.

    Use as a context manager, or call `close()`, to stop the batch threads.
    """

    def __init__(self, config: BatchingConfig) -> None:
        self._config = config
        self._cond = threading.Condition()
        self._queues: dict[Hashable, list[_Batch]] = {}  # waiting batches per key, oldest first
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{config.thread_pool_name}_{i}", daemon=True)
            for i in range(config.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def config(self) -> BatchingConfig:
        """The batching parameters."""
        return self._config

    def queued_requests(self) -> int:
        """Requests waiting for a batch thread (not those running); a queue-depth gauge."""
        with self._cond:
            return sum(len(b.tasks) for queue in self._queues.values() for b in queue)

    def submit(
        self, key: Hashable, inputs: Mapping[str, np.ndarray], run: RunFn
    ) -> dict[str, np.ndarray]:
        """Runs `inputs` in a batch with other requests of `key`; blocks until it has run.

        Args:
          key: What may share a batch, e.g. `BatchKey(model, version, signature)`.
          inputs: Input name -> array `[rows, ...]`; every input has the same `rows`.
          run: The model call, given the merged inputs (`[batch_rows, ...]`) and returning
            output name -> `[batch_rows, ...]`. Only the first request's `run` of each batch is
            called, so requests with equal keys must pass equivalent callables.

        Returns:
          Output name -> this request's `[rows, ...]` slice of the batch's outputs.

        Raises:
          BatchInputError: No inputs, a scalar input, unequal rows, or rows outside
            1..max_batch_size.
          BatchQueueFullError: Too many batches of `key` wait already; retry later.
          BatcherClosedError: The batcher is closed.
          BatchOutputError: An output of the batch lacks the batch dimension.
          Exception: Whatever `run` raised for this request's batch.
        """
        arrays, rows = self._check_inputs(inputs)
        task = _Task(arrays, rows, run)
        self._enqueue(key, task)
        task.done.wait()
        if task.error is not None:
            raise task.error
        assert task.outputs is not None
        return task.outputs

    def close(self) -> None:
        """Runs the waiting batches without waiting for their timeouts, then stops the threads.

        Later `submit` calls raise `BatcherClosedError`. Calling `close` again does nothing.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join()

    def __enter__(self) -> Batcher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_inputs(self, inputs: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
        if not isinstance(inputs, Mapping) or not inputs:
            raise BatchInputError(f"inputs={inputs!r} must be a non-empty dict of name -> array")
        arrays = {name: np.asarray(value) for name, value in inputs.items()}
        for name, array in arrays.items():
            if array.ndim == 0:
                raise BatchInputError(
                    f"input {name!r} is a scalar; batched inputs need the batch dimension "
                    "first, e.g. shape [1] for one example"
                )
        row_counts = {name: array.shape[0] for name, array in arrays.items()}
        if len(set(row_counts.values())) > 1:
            raise BatchInputError(
                f"inputs have different sizes in dimension 0: {row_counts}; batching needs the "
                "same number of rows (examples) in every input"
            )
        rows = next(iter(row_counts.values()))
        limit = self._config.max_batch_size
        if not 1 <= rows <= limit:
            raise BatchInputError(
                f"the request has {rows} rows, outside 1..max_batch_size={limit}; send at most "
                f"{limit} rows per request (empty requests without the batcher), or raise "
                "max_batch_size in the batching parameters file"
            )
        return arrays, rows

    def _enqueue(self, key: Hashable, task: _Task) -> None:
        config = self._config
        layout = batch_tensors.layout(task.inputs, config.pad_variable_length_inputs)
        with self._cond:
            if self._closed:
                raise BatcherClosedError(f"the batcher is closed; {key} was not run")
            queue = self._queues.setdefault(key, [])
            batch = next((b for b in queue if not b.closed and b.layout == layout), None)
            if batch is not None and batch.rows + task.rows > config.max_batch_size:
                batch.closed = True
                batch = None
            if batch is None:
                if len(queue) >= config.max_enqueued_batches:
                    raise BatchQueueFullError(
                        f"the batch queue of {key} is full ({len(queue)} batches wait for "
                        f"{config.num_batch_threads} batch threads); retry later, or raise "
                        "max_enqueued_batches or num_batch_threads in the batching parameters"
                    )
                batch = _Batch(layout, deadline=time.monotonic() + config.batch_timeout_s)
                queue.append(batch)
            batch.tasks.append(task)
            batch.rows += task.rows
            batch.closed = batch.rows == config.max_batch_size
            self._cond.notify_all()

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)

    def _next_batch(self) -> _Batch | None:
        with self._cond:
            while True:
                now = time.monotonic()
                batch, wake_at = self._pop_ready(now)
                if batch is not None or self._closed:
                    return batch
                self._cond.wait(None if wake_at is None else wake_at - now)

    def _pop_ready(self, now: float) -> tuple[_Batch | None, float | None]:
        """Removes and returns the oldest runnable batch, or None and when the next one will be.

        A batch is runnable when full (closed), past its timeout, or the batcher is closing.
        """
        ready: tuple[Hashable, _Batch] | None = None
        wake_at = None
        for key, queue in self._queues.items():
            for batch in queue:
                if batch.closed or self._closed or batch.deadline <= now:
                    if ready is None or batch.deadline < ready[1].deadline:
                        ready = (key, batch)
                elif wake_at is None or batch.deadline < wake_at:
                    wake_at = batch.deadline
        if ready is None:
            return None, wake_at
        key, batch = ready
        self._queues[key].remove(batch)
        if not self._queues[key]:
            del self._queues[key]
        return batch, wake_at

    def _run(self, batch: _Batch) -> None:
        tasks = batch.tasks
        try:
            padded_rows = batch_tensors.padded_size(batch.rows, self._config.allowed_batch_sizes)
            merged = batch_tensors.merge_inputs(
                [task.inputs for task in tasks],
                pad=self._config.pad_variable_length_inputs,
                extra_rows=padded_rows - batch.rows,
            )
            outputs = tasks[0].run(merged)
            splits = batch_tensors.split_outputs(
                outputs, [task.rows for task in tasks], padded_rows
            )
        except Exception as error:  # noqa: BLE001  (handed to each caller, who raises it)
            logger.debug("batch of %d requests failed: %r", len(tasks), error)
            for task in tasks:
                task.error = error
        else:
            for task, split in zip(tasks, splits, strict=True):
                task.outputs, task.error = split, None
        finally:
            for task in tasks:
                task.done.set()
