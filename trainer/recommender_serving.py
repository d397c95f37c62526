"""The exported `recommender` model: retrieve -> drop excluded -> rank -> MMR -> top k, in one
signature.

`serving_default` inputs (all with the same batch size):
  - `user_id`: string `[batch]`.
  - `k`: int32 `[batch]`, items wanted per user, 1..`max_k`.
  - `mmr_lambda`: float32 `[batch]`, diversity weight in [0, 1] (0: the ranking order).
  - `exclude_item_ids`: string `[batch, m]`, items never to return ("" pads rows; m may be 0).
Outputs, `[batch, max(k)]`: `item_ids`, `titles` (string) and `scores` (float32, the ranking
score of each returned item). Positions past a user's `k`, or past the catalog's end once
everything else is excluded, hold item id "" and score 0.

Each user's candidates are the first `max(num_candidates, k)` retrieved items that are not
excluded: the index is asked for that many plus the length of the longest exclusion list in
the batch, so excluded items are always backfilled by the next-best retrieved ones, each user
gets `k` items whenever the catalog has `k` items left, and the answer does not depend on what
else shares the batch. With
`exclude_seen`, every item the user interacted with (at export time) is excluded as well.
Validation failures (k or mmr_lambda out of range, batch sizes that differ) are
InvalidArgument errors naming the input, which TensorFlow Serving returns as INVALID_ARGUMENT.
"""

from __future__ import annotations

import tensorflow as tf
import tf_keras

from recstack import features as F
from trainer.candidate_index import MISSING, CandidateIndex
from trainer.mmr import mmr_select
from trainer.ranking_serving import row_table, score_candidates
from trainer.user_tables import UserTables

#: Catalog row of ids that are not in the catalog (never a candidate).
NO_ROW = -1


class RecommenderServing(tf.Module):
    """Query tower, candidate index, ranking head and MMR behind one signature.

    Args:
      query_model: Query features -> `[batch, d]`.
      users: Per-user tables (history; seen items when `exclude_seen`).
      index: Candidate index over the catalog (its embeddings feed ranking and MMR; it has
        the ids and titles).
      ranker: The ranking head, or None (dot-product scores).
      max_k: Largest `k` a request may ask for.
      num_candidates: Items retrieved for ranking (at least `k`; more when excluding).
      exclude_seen: Also exclude each user's already-seen items.
    """

    def __init__(
        self,
        query_model: tf_keras.layers.Layer,
        users: UserTables,
        index: CandidateIndex,
        ranker: tf_keras.layers.Layer | None,
        max_k: int,
        num_candidates: int,
        exclude_seen: bool,
    ) -> None:
        super().__init__()
        if not 1 <= max_k <= index.size:
            raise ValueError(f"max_k={max_k} must be in 1..{index.size} (the catalog size)")
        self.query_model, self.users, self.index, self.ranker = query_model, users, index, ranker
        self.max_k, self.num_candidates, self.exclude_seen = max_k, num_candidates, exclude_seen
        self.rows = row_table(index.item_ids.numpy().astype(str), default=NO_ROW)

    def _check(
        self, user_id: tf.Tensor, k: tf.Tensor, mmr_lambda: tf.Tensor, exclude_item_ids: tf.Tensor
    ) -> None:
        batch = tf.shape(user_id)[0]
        names = f"{F.INPUT_USER_ID}, {F.INPUT_K}, {F.INPUT_MMR_LAMBDA} and " \
                f"{F.INPUT_EXCLUDE_ITEM_IDS}"  # fmt: skip
        for other in (k, mmr_lambda, exclude_item_ids):
            tf.debugging.assert_equal(
                tf.shape(other)[0], batch, message=f"inputs {names} must have the same batch size"
            )
        tf.debugging.assert_greater_equal(
            k, 1, message=f"input {F.INPUT_K} must be between 1 and {self.max_k}"
        )
        tf.debugging.assert_less_equal(
            k, self.max_k, message=f"input {F.INPUT_K} must be between 1 and {self.max_k}"
        )
        tf.debugging.assert_greater_equal(
            mmr_lambda, 0.0, message=f"input {F.INPUT_MMR_LAMBDA} must be in [0, 1]"
        )
        tf.debugging.assert_less_equal(
            mmr_lambda, 1.0, message=f"input {F.INPUT_MMR_LAMBDA} must be in [0, 1]"
        )

    def excluded_rows(self, user_id: tf.Tensor, exclude_item_ids: tf.Tensor) -> tf.Tensor:
        """Catalog rows to exclude per user: int32 `[batch, e]`, padded with `NO_ROW`."""
        requested = tf.RaggedTensor.from_tensor(exclude_item_ids)
        requested = tf.ragged.boolean_mask(requested, tf.not_equal(requested, ""))
        if self.exclude_seen:
            requested = tf.concat([requested, self.users.seen(user_id)], axis=1)
        rows = tf.ragged.map_flat_values(self.rows.lookup, requested)
        rows = tf.ragged.boolean_mask(rows, tf.not_equal(rows, NO_ROW))
        return rows.to_tensor(default_value=NO_ROW)

    @tf.function(
        input_signature=[
            tf.TensorSpec([None], tf.string, name=F.INPUT_USER_ID),
            tf.TensorSpec([None], tf.int32, name=F.INPUT_K),
            tf.TensorSpec([None], tf.float32, name=F.INPUT_MMR_LAMBDA),
            tf.TensorSpec([None, None], tf.string, name=F.INPUT_EXCLUDE_ITEM_IDS),
        ]
    )
    def serve(
        self, user_id: tf.Tensor, k: tf.Tensor, mmr_lambda: tf.Tensor, exclude_item_ids: tf.Tensor
    ) -> dict[str, tf.Tensor]:
        """See the module docstring."""
        self._check(user_id, k, mmr_lambda, exclude_item_ids)
        width = tf.reduce_max(tf.concat([k, [1]], axis=0))
        query = self.query_model(self.users.query_features(user_id))
        excluded = self.excluded_rows(user_id, exclude_item_ids)
        wanted = tf.maximum(self.num_candidates, width) + tf.shape(excluded)[1]
        _, rows = self.index.search(query, tf.minimum(wanted, self.index.size))
        hit = tf.reduce_any(tf.equal(rows[:, :, None], excluded[:, None, :]), axis=2)
        valid = tf.logical_and(rows != MISSING, tf.logical_not(hit))
        # Each user's pool is their first max(num_candidates, k) items that are not excluded,
        # whatever else shares the batch.
        pool = tf.maximum(self.num_candidates, k)
        valid = tf.logical_and(valid, tf.cumsum(tf.cast(valid, tf.int32), axis=1) <= pool[:, None])
        rows = tf.maximum(rows, 0)
        candidates = tf.gather(self.index.embeddings, rows)
        relevance = score_candidates(self.ranker, query, candidates)
        positions, selected = mmr_select(relevance, candidates, valid, width, mmr_lambda)
        # Each user gets their own k.
        selected = tf.logical_and(selected, tf.range(width)[None, :] < k[:, None])
        item_ids, titles = self.index.describe(tf.gather(rows, positions, batch_dims=1), selected)
        return {
            F.OUTPUT_ITEM_IDS: item_ids,
            F.OUTPUT_TITLES: titles,
            F.OUTPUT_SCORES: tf.where(selected, tf.gather(relevance, positions, batch_dims=1), 0.0),
        }
