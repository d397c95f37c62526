"""TF Serving's batching parameters: `BatchingConfig` and the file that holds them.

`tensorflow_model_server --batching_parameters_file` reads a text `BatchingParameters`, e.g.

    max_batch_size { value: 64 }
    batch_timeout_micros { value: 2000 }
    num_batch_threads { value: 4 }
    allowed_batch_sizes: 16
    allowed_batch_sizes: 64

`load_batching_parameters(path)` reads the same file into a `BatchingConfig` (TF Serving's
defaults for omitted fields), so one file configures this server's `serving.batching.Batcher`
and the real server. Values TF Serving would refuse, and large batch splitting (not
implemented here), raise ValueError or TypeError naming the field and the fix.
"""

from __future__ import annotations

import dataclasses
import itertools
import os

from google.protobuf import text_format

from serving.tf_serving_protos import BatchingParameters

__all__ = ["BatchingConfig", "load_batching_parameters"]


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


def _check_int(name: str, value: object) -> None:
    # bool is an int subclass; `max_batch_size: true` is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r} must be an integer")
