"""What `serving.client` sends and reads besides the RPCs themselves: the recommender's
request inputs, id lists padded into string tensors, the shape checks of recommendation
outputs, and the gRPC retry policy."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recstack import features

#: Status codes gRPC retries: the server is (momentarily) not there, nothing ran.
RETRYABLE_CODES = ("UNAVAILABLE",)


def retry_service_config(retries: int, initial_backoff_s: float = 0.1) -> str:
    """gRPC service config JSON retrying every method up to `retries` times on UNAVAILABLE,
    with exponential backoff from `initial_backoff_s` (at most 2 s between attempts)."""
    policy = {
        "maxAttempts": retries + 1,
        "initialBackoff": f"{initial_backoff_s}s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": list(RETRYABLE_CODES),
    }
    return json.dumps({"methodConfig": [{"name": [{}], "retryPolicy": policy}]})


def recommender_inputs(
    batch: int, k: int, mmr_lambda: float = 0.0, exclude: Sequence[Sequence[str]] | None = None
) -> dict[str, np.ndarray]:
    """The `recommender` signature's inputs besides `user_id`, for `batch` users alike: `k`
    int32 `[batch]`, `mmr_lambda` float32 `[batch]`, `exclude_item_ids` string `[batch, m]`
    ("" padded)."""
    return {
        features.INPUT_K: np.full(batch, k, np.int32),
        features.INPUT_MMR_LAMBDA: np.full(batch, mmr_lambda, np.float32),
        features.INPUT_EXCLUDE_ITEM_IDS: padded(exclude or [[]] * batch, batch, "exclude"),
    }


def user_batch(user_ids: Sequence[str]) -> np.ndarray:
    if isinstance(user_ids, str | bytes):
        raise TypeError(f"user_ids={user_ids!r} is one string; pass a list, e.g. [{user_ids!r}]")
    if not user_ids:
        raise ValueError("user_ids is empty; pass at least one user id")
    return np.array([str(u) for u in user_ids], dtype=object)


def padded(lists: Sequence[Sequence[str]], batch: int, name: str) -> np.ndarray:
    """Per-user id lists as a string `[batch, max(1, longest)]` array padded with ""."""
    if len(lists) != batch:
        raise ValueError(f"{name} has {len(lists)} lists for {batch} user(s); pass one per user")
    # At least one column: TF Serving's batching cannot merge an empty [batch, 0] tensor with
    # non-empty ones ("Got empty tensor in batch of non-empty tensors").
    width = max(1, max((len(ids) for ids in lists), default=0))
    array = np.full((batch, width), "", dtype=object)
    for row, ids in enumerate(lists):
        if isinstance(ids, str | bytes):
            raise TypeError(f"{name}[{row}]={ids!r} is one string; pass a list of ids")
        array[row, : len(ids)] = [str(i) for i in ids]
    return array


def as_array(values: Any) -> np.ndarray:
    """`values` as an array TensorFlow converts exactly (str -> DT_STRING, not unicode)."""
    array = np.asarray(values)
    if array.dtype.kind == "U":
        array = array.astype(object)
    return array


def required_outputs(
    model: str, outputs: Mapping[str, np.ndarray], batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """The item ids and scores of a recommendation response, shape-checked `[batch, k]`."""
    missing = [n for n in (features.OUTPUT_ITEM_IDS, features.OUTPUT_SCORES) if n not in outputs]
    if missing:
        raise ValueError(
            f"model {model!r} returned outputs {sorted(outputs)} without {missing}; recommend() "
            "needs a model exported with the recommendation signature (e.g. "
            f"{features.MODEL_RETRIEVAL!r})"
        )
    item_ids = outputs[features.OUTPUT_ITEM_IDS]
    scores = outputs[features.OUTPUT_SCORES]
    if item_ids.ndim != 2 or item_ids.shape[0] != batch or scores.shape != item_ids.shape:
        raise ValueError(
            f"model {model!r} returned {features.OUTPUT_ITEM_IDS!r} of shape {item_ids.shape} "
            f"and {features.OUTPUT_SCORES!r} of shape {scores.shape}; expected both "
            f"[{batch}, k] for {batch} user(s)"
        )
    return item_ids, scores


def text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
