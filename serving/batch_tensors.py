"""How the requests of one batch become one model call and back: `serving.batching`'s tensors.

`layout` tells which requests may share a batch, `merge_inputs` concatenates their inputs
along axis 0 (padding trailing dims and filling up to an allowed batch size as TF Serving
does), and `split_outputs` hands each request its own rows of the model's outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from serving.batching_errors import BatchOutputError

__all__ = ["layout", "merge_inputs", "padded_size", "split_outputs"]


def layout(arrays: Mapping[str, np.ndarray], pad: bool) -> tuple:
    """What must be equal for two requests to share a batch: their tensors can then be
    concatenated along axis 0 (`pad`: after padding dims 1.. with `merge_inputs`).

    Args:
      arrays: One request's inputs, name -> `[rows, ...]`.
      pad: `pad_variable_length_inputs`: trailing dims may differ, ranks may not; a tensor with
        a zero-width dim (no value to pad with) only batches with other such tensors.
    """
    if pad:
        shapes = {name: (a.ndim, 0 in a.shape[1:]) for name, a in arrays.items()}
    else:
        shapes = {name: a.shape[1:] for name, a in arrays.items()}
    return tuple(sorted((n, _dtype_key(a.dtype), shapes[n]) for n, a in arrays.items()))


def _dtype_key(dtype: np.dtype) -> str:
    # Fixed-width strings of different widths concatenate fine ('S3' + 'S7' -> 'S7').
    return dtype.kind if dtype.kind in "SU" else dtype.str


def padded_size(rows: int, allowed_batch_sizes: Sequence[int]) -> int:
    """The smallest of `allowed_batch_sizes` that holds `rows` (`rows` itself if none is set)."""
    return next((size for size in allowed_batch_sizes if size >= rows), rows)


def merge_inputs(
    per_task: Sequence[Mapping[str, np.ndarray]], pad: bool, extra_rows: int
) -> dict[str, np.ndarray]:
    """The batch's inputs: each request's `[rows, ...]` concatenated along axis 0.

    Args:
      per_task: Each request's inputs, in batch order; all have the same `layout`.
      pad: Pad dims 1.. to the largest in the batch first (`pad_variable_length_inputs`).
      extra_rows: Copies of a real row appended to reach an allowed batch size.

    Returns:
      Input name -> `[sum(rows) + extra_rows, ...]`.
    """
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
            # Never empty here: `layout` keeps zero-width tensors in their own batches.
            part = np.pad(part, widths, mode="constant", constant_values=part.flat[0])
        padded.append(part)
    return padded


def split_outputs(
    outputs: Mapping[str, np.ndarray], sizes: Sequence[int], padded_rows: int
) -> list[dict[str, np.ndarray]]:
    """Each request's rows of the batch's `outputs` (padding rows dropped).

    Args:
      outputs: The model call's output name -> `[padded_rows, ...]`.
      sizes: Rows of each request, in batch order.
      padded_rows: Rows the model was called with (`sum(sizes)` plus padding).

    Returns:
      One dict per request, output name -> `[size, ...]`.

    Raises:
      BatchOutputError: `outputs` is not a mapping, or an output lacks the batch dimension.
    """
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
