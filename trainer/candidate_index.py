"""`CandidateIndex`: top-k catalog rows by dot product, with ScaNN or exactly, inside the graph.

The exported models search it with a number of neighbours chosen per request (the recommender
retrieves more when a request excludes items), which ScaNN's ops take as a tensor. The item
embeddings are kept too (a non-trainable variable): brute force scores them all, and the
ranking and re-ranking stages gather candidates' embeddings from them.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from scann.scann_ops.py import scann_ops

#: Index kinds.
SCANN = "scann"
BRUTE_FORCE = "brute_force"
#: Row of a result the search did not fill.
MISSING = -1
#: K-means iterations ScaNN uses to partition the catalog (TFRS's default).
TRAINING_ITERATIONS = 12


class CandidateIndex(tf.Module):
    """Searches `[n, d]` item embeddings by dot product.

    Args:
      embeddings: `[n, d]` float32 item embeddings; row `i` is catalog item `i`.
      kind: `SCANN` (approximate: partitions, anisotropic quantization, exact re-scoring of
        the best candidates) or `BRUTE_FORCE` (exact; core TensorFlow ops only).
      num_leaves, num_leaves_to_search, num_reordering_candidates, dimensions_per_block:
        ScaNN settings (see `trainer.export.ExportConfig`); ignored by brute force.
      item_ids, titles: `[n]` catalog ids and titles of the rows (default: row numbers, "").

    Attributes:
      embeddings: `[n, d]` float32 variable.
      item_ids, titles: `[n]` string variables.
      size: n.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        kind: str = SCANN,
        num_leaves: int = 1,
        num_leaves_to_search: int = 1,
        num_reordering_candidates: int = 100,
        dimensions_per_block: int = 2,
        *,
        item_ids: np.ndarray | None = None,
        titles: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        embeddings = np.asarray(embeddings, np.float32)
        if embeddings.ndim != 2 or not len(embeddings):
            raise ValueError(
                f"embeddings must be a non-empty [n, d] matrix, got {embeddings.shape}"
            )
        if kind not in (SCANN, BRUTE_FORCE):
            raise ValueError(f"kind={kind!r} is not one of {[SCANN, BRUTE_FORCE]}")
        self.kind = kind
        self.size = len(embeddings)
        self.embeddings = tf.Variable(embeddings, trainable=False, name="item_embeddings")
        n = len(embeddings)
        ids = np.arange(n).astype(str) if item_ids is None else np.asarray(item_ids, dtype=str)
        names = np.full(n, "") if titles is None else np.asarray(titles, dtype=str)
        if len(ids) != n or len(names) != n:
            raise ValueError(
                f"{len(ids)} item ids and {len(names)} titles for {n} embeddings; give one per row"
            )
        self.item_ids = tf.Variable(ids, trainable=False, name="item_ids")
        self.titles = tf.Variable(names, trainable=False, name="titles")
        self.num_reordering_candidates = num_reordering_candidates
        self.searcher = None
        if kind == SCANN:
            builder = scann_ops.builder(embeddings, num_reordering_candidates, "dot_product")
            builder = builder.tree(
                num_leaves=num_leaves,
                num_leaves_to_search=num_leaves_to_search,
                training_iterations=TRAINING_ITERATIONS,
            )
            builder = builder.score_ah(dimensions_per_block=dimensions_per_block)
            builder = builder.reorder(num_reordering_candidates)
            self.searcher = builder.build().serialize_to_module()

    def describe(self, rows: tf.Tensor, keep: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Item ids and titles of `rows` (int32, any shape); "" where `keep` (bool, same
        shape) is False, e.g. for `MISSING` rows."""
        rows = tf.maximum(rows, 0)
        return (
            tf.where(keep, tf.gather(self.item_ids, rows), ""),
            tf.where(keep, tf.gather(self.titles, rows), ""),
        )

    def search(self, queries: tf.Tensor, k: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """Top-`k` rows per query.

        Args:
          queries: float32 `[batch, d]`.
          k: int32 scalar, 1 <= k <= size.

        Returns:
          scores: float32 `[batch, k]`, descending; rows: int32 `[batch, k]` catalog rows.
          A ScaNN search that finds fewer than k items fills the rest with row `MISSING` and
          score -inf.
        """
        k = tf.cast(k, tf.int32)
        if self.searcher is None:
            return tf.math.top_k(tf.matmul(queries, self.embeddings, transpose_b=True), k)
        searcher = scann_ops.searcher_from_module(self.searcher)
        # Re-score at least 4k candidates exactly: more neighbours than re-scored candidates
        # would come back truncated.
        pre_reorder = tf.maximum(tf.constant(self.num_reordering_candidates, tf.int32), 4 * k)
        # Batches are split across threads (TFRS's default, `parallelize_batch_searches`).
        result = searcher.search_batched_parallel(
            queries, final_num_neighbors=k, pre_reorder_num_neighbors=pre_reorder
        )
        # A search that finds fewer than k items (too few partitions searched) returns only as
        # many columns as its fullest row, with other rows padded by row 0 and a NaN score;
        # mark all of them missing. The reshape also gives the static rank ScaNN's ops leave
        # unknown, which the callers' layers need.
        found = tf.logical_not(tf.math.is_nan(result.distances))
        rows = tf.where(found, result.indices, MISSING)
        scores = tf.where(found, result.distances, -float("inf"))
        pad = [[0, 0], [0, k - tf.shape(rows)[1]]]
        shape = tf.stack([tf.shape(queries)[0], k])
        rows = tf.reshape(tf.pad(rows, pad, constant_values=MISSING), shape)
        return tf.reshape(tf.pad(scores, pad, constant_values=-float("inf")), shape), rows
