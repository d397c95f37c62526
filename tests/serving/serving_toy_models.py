"""A toy recommender SavedModel for the serving tests, and its outputs recomputed in Python.

The toy model is deterministic and simple enough that `expected_recommendations` recomputes
its outputs without TensorFlow, so tests compare the server against independent values.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from recstack import features

USERS = ("alice", "bob", "carol")
ITEMS = tuple(f"item-{j}" for j in range(7))
TITLES = tuple(f"Title {j}" for j in range(7))
#: Items the toy model returns per user.
MODEL_K = 4
#: Model without a titles output.
MODEL_NO_TITLES = "no_titles"
#: Model directory without any version directory (must be skipped).
MODEL_NO_VERSIONS = "unversioned"


class ToyRecommender(tf.Module):
    """`serving_default`: user_id `[batch]` -> item_ids, titles `[batch, MODEL_K]` strings and
    scores `[batch, MODEL_K]` float32. Unknown users map to row len(USERS); an empty user id
    fails a runtime assertion (InvalidArgumentError)."""

    def __init__(self, offset: int, with_titles: bool = True) -> None:
        super().__init__()
        self._offset = offset
        self._with_titles = with_titles
        self._table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(USERS), tf.range(len(USERS), dtype=tf.int64)
            ),
            default_value=len(USERS),
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.INPUT_USER_ID)])
    def serve(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        tf.debugging.assert_greater(
            tf.strings.length(user_id), 0, message="user_id must be non-empty"
        )
        row = self._table.lookup(user_id)
        cols = (row[:, None] * 2 + self._offset + tf.range(MODEL_K, dtype=tf.int64)) % len(ITEMS)
        ranks = tf.range(MODEL_K, dtype=tf.float32)
        outputs = {
            features.OUTPUT_ITEM_IDS: tf.gather(tf.constant(ITEMS), cols),
            features.OUTPUT_SCORES: tf.cast(row, tf.float32)[:, None] + 1.0 / (1.0 + ranks),
        }
        if self._with_titles:
            outputs[features.OUTPUT_TITLES] = tf.gather(tf.constant(TITLES), cols)
        return outputs


def expected_recommendations(user_id: str, version: int) -> tuple[list[str], list[str], list]:
    """(item_ids, titles, scores) the toy model of `version` returns for `user_id`."""
    row = USERS.index(user_id) if user_id in USERS else len(USERS)
    cols = [(row * 2 + version + rank) % len(ITEMS) for rank in range(MODEL_K)]
    scores = [np.float32(row) + np.float32(1.0) / np.float32(1.0 + rank) for rank in range(MODEL_K)]
    return [ITEMS[c] for c in cols], [TITLES[c] for c in cols], scores


def save_toy_model(path: str, version: int, with_titles: bool = True) -> None:
    """Saves the toy recommender whose item offset is `version` to `path`."""
    module = ToyRecommender(offset=version, with_titles=with_titles)
    tf.saved_model.save(
        module, path, signatures={features.SERVING_SIGNATURE: module.serve.get_concrete_function()}
    )


class RegistryWith:
    """A stand-in registry serving only the retrieval model of `registry`, with its serving
    signature replaced by the Python callable `signature` (to fail or stall on purpose)."""

    def __init__(self, registry, signature):
        self.names = registry.names
        self._model = dataclasses.replace(
            registry.get(features.MODEL_RETRIEVAL),
            signatures={features.SERVING_SIGNATURE: signature},
        )

    def get(self, name, version=None):
        return self._model
