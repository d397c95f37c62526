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

Errors the server should turn into a status carry it as `BatchingError.code`.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import NamedTuple

import grpc
import numpy as np
from google.protobuf import text_format

from serving.tf_serving_protos import BatchingParameters

logger = logging.getLogger(__name__)

#: The model call of one batch: input name -> [rows, ...] array in, output name -> array out.
RunFn = Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]


def _available_cpus() -> int:
    # TF Serving's default is port::MaxParallelism(): the CPUs this process may run on.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
    """TF Serving's `BatchingParameters`, with its defaults for omitted fields.

    Attributes:
      max_batch_size: Most rows (dimension 0, summed over requests) in one model call; larger
        requests are rejected. TF Serving's default is 1000.
      batch_timeout_micros: How long the first request of a batch waits for others before the
        batch runs anyway; 0 runs it as soon as a batch thread is free.
      max_enqueued_batches: Batches per (model, version, signature) that may wait for a thread;
        a request that needs one more is refused with UNAVAILABLE.
      num_batch_threads: Threads running batches (model calls in parallel); default: the CPUs
        this process may use.
      allowed_batch_sizes: If set, each batch is padded up to the smallest of these sizes that
        fits it (repeating a real row, as TF Serving does); increasing, last == max_batch_size.
      pad_variable_length_inputs: Pad each input's dims after the first to the largest in the
        batch, so requests with, e.g., different history lengths share a batch.
      thread_pool_name: Name prefix of the batch threads.
    """

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=_available_cpus)
    allowed_batch_sizes: tuple[int, ...] = ()
    pad_variable_length_inputs: bool = False
    thread_pool_name: str = "batch_threads"

    def __post_init__(self) -> None:
        for name in ("max_batch_size", "max_enqueued_batches", "num_batch_threads"):
            value = getattr(self, name)
            _check_int(name, value)
            if value < 1:
                raise ValueError(f"{name}={value} must be at least 1 (TF Serving requires > 0)")
        _check_int("batch_timeout_micros", self.batch_timeout_micros)
        if self.batch_timeout_micros < 0:
            raise ValueError(
                f"batch_timeout_micros={self.batch_timeout_micros} must be >= 0 (e.g. 2000)"
            )
        object.__setattr__(self, "allowed_batch_sizes", tuple(self.allowed_batch_sizes))
        self._check_allowed_batch_sizes()
        if not isinstance(self.pad_variable_length_inputs, bool):
            raise TypeError(
                f"pad_variable_length_inputs={self.pad_variable_length_inputs!r} must be a bool"
            )
        if not isinstance(self.thread_pool_name, str) or not self.thread_pool_name:
            raise ValueError(f"thread_pool_name={self.thread_pool_name!r} must be a non-empty str")

    def _check_allowed_batch_sizes(self) -> None:
        sizes = self.allowed_batch_sizes
        for size in sizes:
            _check_int("allowed_batch_sizes entry", size)
        if sizes and (sizes[0] < 1 or any(a >= b for a, b in itertools.pairwise(sizes))):
            raise ValueError(
                f"allowed_batch_sizes={list(sizes)} must be positive and strictly increasing, "
                "e.g. [8, 16, 32, 64]"
            )
        if sizes and sizes[-1] != self.max_batch_size:
            raise ValueError(
                f"allowed_batch_sizes={list(sizes)} must end with max_batch_size="
                f"{self.max_batch_size} (TF Serving refuses to load otherwise); append it or "
                "change max_batch_size"
            )

    @property
    def batch_timeout_s(self) -> float:
        """`batch_timeout_micros` in seconds."""
        return self.batch_timeout_micros / 1e6

    @classmethod
    def from_proto(cls, params: BatchingParameters) -> BatchingConfig:
        """The config a `tensorflow.serving.BatchingParameters` message describes.

        Raises:
          ValueError: The message turns on large batch splitting (not implemented here), or a
            value is out of range.
        """
        if params.enable_large_batch_splitting.value or params.HasField("max_execution_batch_size"):
            raise ValueError(
                "enable_large_batch_splitting / max_execution_batch_size are not supported by "
                "serving.batching; remove them (requests above max_batch_size are then "
                "rejected, as TF Serving does without splitting)"
            )
        wrapped = {
            name: getattr(params, name).value
            for name in (
                "max_batch_size",
                "batch_timeout_micros",
                "max_enqueued_batches",
                "num_batch_threads",
                "thread_pool_name",
            )
            if params.HasField(name)
        }
        return cls(
            **wrapped,
            allowed_batch_sizes=tuple(params.allowed_batch_sizes),
            pad_variable_length_inputs=params.pad_variable_length_inputs,
        )


def load_batching_parameters(path: str) -> BatchingConfig:
    """Reads a `--batching_parameters_file` (text `BatchingParameters`) into a `BatchingConfig`.

    Raises:
      FileNotFoundError: No file at `path`.
      ValueError: The text does not parse (e.g. an unknown field), or a value is invalid; the
        message starts with `path`.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError as e:
        raise FileNotFoundError(
            f"batching parameters file {path} does not exist; pass the file you give "
            "tensorflow_model_server as --batching_parameters_file"
        ) from e
    params = BatchingParameters()
    try:
        text_format.Parse(text, params)
    except text_format.ParseError as e:
        fields = ", ".join(f.name for f in BatchingParameters.DESCRIPTOR.fields)
        raise ValueError(
            f"{path} is not a text BatchingParameters: {e}. Known fields: {fields}; numbers "
            "are wrapped, e.g. `max_batch_size { value: 64 }`"
        ) from e
    try:
        return BatchingConfig.from_proto(params)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e


class BatchingError(Exception):
    """An error of the batcher itself; `code` is the gRPC status the server should answer."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class BatchQueueFullError(BatchingError):
    """`max_enqueued_batches` batches already wait for a thread (TF Serving: UNAVAILABLE)."""

    code = grpc.StatusCode.UNAVAILABLE


class BatcherClosedError(BatchingError):
    """`submit` after `close()`: the server is shutting down (UNAVAILABLE)."""

    code = grpc.StatusCode.UNAVAILABLE


class BatchInputError(BatchingError, ValueError):
    """The request's inputs cannot be batched: too many rows, no batch dim (INVALID_ARGUMENT)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class BatchOutputError(BatchingError):
    """The model's outputs cannot be split per request (TF Serving: FAILED_PRECONDITION)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


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

    def _layout(self, arrays: Mapping[str, np.ndarray]) -> tuple:
        # Requests share a batch only if their tensors can be concatenated along axis 0.
        if self._config.pad_variable_length_inputs:
            shapes = {name: (a.ndim, 0 in a.shape[1:]) for name, a in arrays.items()}
        else:
            shapes = {name: a.shape[1:] for name, a in arrays.items()}
        return tuple(sorted((n, _dtype_key(a.dtype), shapes[n]) for n, a in arrays.items()))

    def _enqueue(self, key: Hashable, task: _Task) -> None:
        config = self._config
        layout = self._layout(task.inputs)
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
            padded_rows = _padded_size(batch.rows, self._config.allowed_batch_sizes)
            merged = _merge_inputs(
                [task.inputs for task in tasks],
                pad=self._config.pad_variable_length_inputs,
                extra_rows=padded_rows - batch.rows,
            )
            outputs = tasks[0].run(merged)
            splits = _split_outputs(outputs, [task.rows for task in tasks], padded_rows)
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


def _dtype_key(dtype: np.dtype) -> str:
    # Fixed-width strings of different widths concatenate fine ('S3' + 'S7' -> 'S7').
    return dtype.kind if dtype.kind in "SU" else dtype.str


def _padded_size(rows: int, allowed_batch_sizes: Sequence[int]) -> int:
    return next((size for size in allowed_batch_sizes if size >= rows), rows)


def _merge_inputs(
    per_task: Sequence[Mapping[str, np.ndarray]], pad: bool, extra_rows: int
) -> dict[str, np.ndarray]:
    merged = {}
    for name in per_task[0]:
        parts = [inputs[name] for inputs in per_task]
        if pad:
            parts = _pad_trailing_dims(parts)
        if extra_rows:
            # TF Serving fills up to an allowed batch size with copies of a real row.
            parts.append(np.repeat(parts[-1][:1], extra_rows, axis=0))
        merged[name] = np.concatenate(parts, axis=0)
    return merged


def _pad_trailing_dims(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Pads dims 1.. of each part to the largest in `parts`, with the part's first value.

    That is TF Serving's pad value (`batching_util.cc`: `input.flat<T>()(0)`), not 0 or "", so
    models must not read meaning into padded positions (mask by length instead).
    """
    target = np.max([part.shape[1:] for part in parts], axis=0)
    padded = []
    for part in parts:
        widths = [(0, 0)] + [(0, int(t) - s) for s, t in zip(part.shape[1:], target, strict=True)]
        if any(after for _, after in widths):
            # Never empty here: `Batcher._layout` keeps zero-width tensors in their own batches.
            part = np.pad(part, widths, mode="constant", constant_values=part.flat[0])
        padded.append(part)
    return padded


def _split_outputs(
    outputs: Mapping[str, np.ndarray], sizes: Sequence[int], padded_rows: int
) -> list[dict[str, np.ndarray]]:
    if not isinstance(outputs, Mapping):
        raise BatchOutputError(
            f"the model call returned a {type(outputs).__name__}; it must return a dict of "
            "output name -> array with the batch dimension first"
        )
    bounds = np.cumsum(sizes)[:-1]
    splits: list[dict[str, np.ndarray]] = [{} for _ in sizes]
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.ndim == 0 or array.shape[0] != padded_rows:
            raise BatchOutputError(
                f"output {name!r} has shape {array.shape}, but the batch has {padded_rows} rows; "
                "batched signatures must return dimension 0 = rows of the inputs (turn batching "
                "off for this model, or return per-example outputs)"
            )
        for split, part in zip(splits, np.split(array[: sum(sizes)], bounds), strict=True):
            split[name] = part
    return splits


def _check_int(name: str, value: object) -> None:
    # bool is an int subclass; `max_batch_size: true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r} must be an integer")
