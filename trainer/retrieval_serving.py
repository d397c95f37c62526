"""The exported `retrieval` model: each user's top-k catalog items from the candidate index.

`serving_default` takes `user_id` (string `[batch]`) and returns `item_ids`, `titles` (string
`[batch, k]`) and `scores` (float32 `[batch, k]`, the query x item dot product, descending).
Should a ScaNN search find fewer than k items (too few partitions searched; the export's
recall gate rejects such settings), the rest holds item id "" and score 0.
The query tower's other inputs (recent items, hour, weekday) are filled in the graph
(`trainer.user_tables`).
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from recstack import features as F
from trainer.candidate_index import MISSING, CandidateIndex
from trainer.user_tables import UserTables


class RetrievalServing(tf.Module):
    """Query tower + candidate index.

    Args:
      query_model: Query features -> `[batch, d]`.
      users: Per-user tables filling in the query features.
      index: Candidate index over the catalog (with its ids and titles).
      k: Items returned per user (at most the catalog size).
    """

    def __init__(
        self,
        query_model: tf_keras.layers.Layer,
        users: UserTables,
        index: CandidateIndex,
        k: int,
    ) -> None:
        super().__init__()
        if not 1 <= k <= index.size:
            raise ValueError(f"k={k} must be in 1..{index.size} (the catalog size)")
        self.query_model, self.users, self.index, self.k = query_model, users, index, k

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=F.INPUT_USER_ID)])
    def serve(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top-k items for each user id: `[batch]` -> `{item_ids, titles, scores}: [batch, k]`."""
        query = self.query_model(self.users.query_features(user_id))
        scores, rows = self.index.search(query, tf.constant(self.k))
        found = rows != MISSING
        item_ids, titles = self.index.describe(rows, found)
        return {
            F.OUTPUT_ITEM_IDS: item_ids,
            F.OUTPUT_TITLES: titles,
            F.OUTPUT_SCORES: tf.where(found, scores, 0.0),
        }
