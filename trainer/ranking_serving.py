"""The exported `ranking` model: scores of given candidate items for each user.

`serving_default` takes `user_id` (string `[batch]`) and `item_ids` (string `[batch, n]`) and
returns `scores` (float32 `[batch, n]`, the ranking head's score, or the retrieval dot product
for models trained without one) and `titles` (string `[batch, n]`). Candidate embeddings are
precomputed at export (text included), so serving runs no text ops; ids missing from the
catalog (and "" padding) are scored as an unknown item: the model's out-of-vocabulary id row
with no categories or text.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras

from recstack import features as F
from trainer.user_tables import UserTables


def score_candidates(
    ranker: tf_keras.layers.Layer | None, query: tf.Tensor, candidates: tf.Tensor
) -> tf.Tensor:
    """Scores each query's candidates.

    Args:
      ranker: `(query [m, d], candidate [m, d]) -> [m]` scorer (`trainer.ranking.DcnRanker`),
        or None for the dot product.
      query: float32 `[batch, d]`; candidates: float32 `[batch, n, d]`.

    Returns:
      float32 `[batch, n]`.
    """
    if ranker is None:
        return tf.einsum("bd,bnd->bn", query, candidates)
    repeated = tf.repeat(query, tf.shape(candidates)[1], axis=0)
    # The static width keeps the ranker's layers buildable.
    flat = tf.reshape(candidates, [-1, candidates.shape[-1]])
    return tf.reshape(ranker(repeated, flat), tf.shape(candidates)[:2])


def row_table(item_ids: np.ndarray, default: int) -> tf.lookup.StaticHashTable:
    """Item id -> catalog row (int32), `default` for ids not in the catalog."""
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(
            tf.constant(np.asarray(item_ids, dtype=str)),
            tf.range(len(item_ids), dtype=tf.int32),
        ),
        default_value=default,
    )


class RankingServing(tf.Module):
    """Query tower + precomputed candidate embeddings + ranking head.

    Args:
      query_model: Query features -> `[batch, d]` (`trainer.towers.QueryTower`).
      users: The per-user tables filling in the query features.
      item_ids, titles: `[n]` catalog ids and titles.
      embeddings: `[n, d]` candidate embeddings of the catalog items.
      unknown_embedding: `[d]` candidate embedding of an id not in the catalog.
      ranker: The ranking head, or None (dot-product scores).
    """

    def __init__(
        self,
        query_model: tf_keras.layers.Layer,
        users: UserTables,
        item_ids: np.ndarray,
        titles: np.ndarray,
        embeddings: np.ndarray,
        unknown_embedding: np.ndarray,
        ranker: tf_keras.layers.Layer | None,
    ) -> None:
        super().__init__()
        self.query_model, self.users, self.ranker = query_model, users, ranker
        n = len(item_ids)
        self.rows = row_table(item_ids, default=n)
        # Row n is the unknown item.
        self.embeddings = tf.Variable(
            np.concatenate([embeddings, unknown_embedding[None]]).astype(np.float32),
            trainable=False,
            name="candidate_embeddings",
        )
        self.titles = tf.Variable(np.concatenate([np.asarray(titles, dtype=str), [""]]),
                                  trainable=False, name="titles")  # fmt: skip

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=F.INPUT_USER_ID),
            tf.TensorSpec([None, None], tf.string, name=F.INPUT_ITEM_IDS),
        ]
    )
    def serve(self, user_id: tf.Tensor, item_ids: tf.Tensor) -> dict[str, tf.Tensor]:
        """`[batch]` users x `[batch, n]` candidates -> `{scores, titles}: [batch, n]`."""
        tf.debugging.assert_equal(
            tf.shape(item_ids)[0],
            tf.shape(user_id)[0],
            message=f"inputs {F.INPUT_USER_ID} and {F.INPUT_ITEM_IDS} must have the same "
            "batch size (one row of candidates per user)",
        )
        query = self.query_model(self.users.query_features(user_id))
        rows = self.rows.lookup(item_ids)
        scores = score_candidates(self.ranker, query, tf.gather(self.embeddings, rows))
        return {F.OUTPUT_SCORES: scores, F.OUTPUT_TITLES: tf.gather(self.titles, rows)}
