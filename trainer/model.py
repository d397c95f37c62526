"""The recommender: a TFRS two-tower retrieval model with a DCN-v2 ranking head, trained as one
multitask model."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from recstack import features as F
from trainer.catalog import Catalog
from trainer.config import RANKING_BINARY, TrainConfig
from trainer.data import Vocabulary
from trainer.id_embedding import IdEmbedding
from trainer.ranking import DcnRanker
from trainer.towers import CandidateTower, QueryTower

#: Keys of the query features the query tower reads.
QUERY_FEATURES = (F.USER_ID, F.HISTORY_ITEM_IDS, F.HOUR, F.WEEKDAY)


class SamplingProbability(tf_keras.layers.Layer):
    """Maps item ids to their in-batch sampling probability (for logQ correction).

    Args:
      tokens: Item ids; probabilities: their share of training interactions.

    Call:
      item_ids: string tensor `[batch]`.
      Returns: float32 `[batch]`; ids not in the vocabulary get the smallest known probability.
    """

    def __init__(self, tokens: list[str], probabilities: list[float], **kwargs) -> None:
        super().__init__(trainable=False, **kwargs)
        self.tokens = list(tokens)
        self.probabilities = [float(p) for p in probabilities]
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.tokens), tf.constant(self.probabilities, dtype=tf.float32)
            ),
            default_value=float(min(self.probabilities)),
        )

    @classmethod
    def from_vocabulary(cls, vocabulary: Vocabulary, **kwargs) -> SamplingProbability:
        return cls(list(vocabulary.tokens), vocabulary.probabilities.tolist(), **kwargs)

    def call(self, item_ids: tf.Tensor) -> tf.Tensor:
        return self.table.lookup(item_ids)

    def get_config(self) -> dict:
        config = super().get_config()
        config.pop("trainable", None)
        config.update(tokens=self.tokens, probabilities=self.probabilities)
        return config


class RecommenderModel(tfrs.Model):
    """Query tower x candidate tower (retrieval) plus a DCN-v2 ranker, one multitask loss.

    loss = retrieval_weight * in-batch sampled softmax (with logQ correction, accidental-hit
    removal and optional hard-negative mining) + ranking.weight * ranking loss (MSE on the
    label, or cross-entropy for a binary label), each example weighted by its `weight`.

    Args:
      user_vocabulary, item_vocabulary: Training ids with counts (item counts give the
        sampling probabilities).
      catalog: Every catalog item (categories and text feed the candidate tower).
      config: Hyperparameters.
      text_vectors: `[len(catalog), t]` frozen text vectors of the catalog items, or None.
      text_encoder: Trainable text tower (`[batch]` strings -> `[batch, t]`), or None.

    Attributes:
      catalog: The catalog the candidate tower was built from.
      query_model: Query features (`QUERY_FEATURES`) -> `[batch, embedding_dim]`.
      candidate_model: `[batch]` item ids -> `[batch, embedding_dim]`.
      ranker: `(query, candidate)` embeddings -> `[batch]` scores (None without ranking).
    """

    def __init__(
        self,
        user_vocabulary: Vocabulary,
        item_vocabulary: Vocabulary,
        catalog: Catalog,
        config: TrainConfig,
        text_vectors: np.ndarray | None = None,
        text_encoder: tf_keras.layers.Layer | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.catalog = catalog
        dim, oov = config.embedding_dim, config.num_oov_buckets
        # Items known to the model: training items first, then catalog-only (cold) items.
        known = list(item_vocabulary.tokens)
        seen = set(known)
        known += [item for item in catalog.ids.tolist() if item not in seen]
        self.item_embedding = IdEmbedding(known, dim, oov, name="item_id")
        query = config.query
        self.query_model = QueryTower(
            list(user_vocabulary.tokens), self.item_embedding, dim, oov, query.history_length,
            query.attention_layers, query.attention_heads, query.use_context, name="query_tower",
        )  # fmt: skip
        self.candidate_model = CandidateTower(
            self.item_embedding,
            catalog.ids,
            dim,
            categories=catalog.categories if config.use_categories else None,
            category_vocabulary=catalog.category_vocabulary,
            text_vectors=text_vectors,
            text_encoder=text_encoder,
            texts=catalog.texts,
            name="candidate_tower",
        )
        self.sampling_probability = SamplingProbability.from_vocabulary(item_vocabulary)
        self.retrieval_task = tfrs.tasks.Retrieval(
            temperature=config.temperature,
            num_hard_negatives=config.hard_negatives or None,
            remove_accidental_hits=config.remove_accidental_hits,
        )
        ranking = config.ranking
        self.ranker = None
        if ranking.weight > 0:
            self.ranker = DcnRanker(ranking.cross_layers, ranking.projection_dim,
                                    ranking.deep_layers, name="ranker")  # fmt: skip
            binary = ranking.objective == RANKING_BINARY
            self.ranking_task = tfrs.tasks.Ranking(
                loss=(
                    tf_keras.losses.BinaryCrossentropy(from_logits=True)
                    if binary
                    else tf_keras.losses.MeanSquaredError()
                ),
                metrics=[
                    tf_keras.metrics.AUC(from_logits=True, name="auc")
                    if binary
                    else tf_keras.metrics.RootMeanSquaredError(name="rmse")
                ],
            )
        self.retrieval_loss = tf_keras.metrics.Mean("retrieval_loss")
        self.ranking_loss = tf_keras.metrics.Mean("ranking_loss")

    def call(self, features: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        """Both towers (and the ranker) on a batch of examples.

        Returns `{"query": [batch, d], "candidate": [batch, d]}` plus `"score": [batch]` with a
        ranker. Calling the model once builds every variable, which BackupAndRestore needs
        before `fit` to restore an interrupted run.
        """
        query = self.query_model(features, training=training)
        candidate = self.candidate_model(features[F.ITEM_ID], training=training)
        outputs = {"query": query, "candidate": candidate}
        if self.ranker is not None:
            outputs["score"] = self.ranker(query, candidate)
        return outputs

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """Weighted multitask loss of a batch of examples (`features.INTERACTION_FEATURES`, the
        history as a dense `[batch, history_length]` tensor)."""
        item_ids = features[F.ITEM_ID]
        outputs = self(features, training=training)
        weight = features.get(F.WEIGHT)
        probability = self.sampling_probability(item_ids) if self.config.logq_correction else None
        retrieval = self.retrieval_task(
            outputs["query"],
            outputs["candidate"],
            sample_weight=weight,
            candidate_sampling_probability=probability,
            candidate_ids=item_ids if self.config.remove_accidental_hits else None,
            compute_metrics=False,
            compute_batch_metrics=False,
        )
        self.retrieval_loss.update_state(retrieval)
        loss = self.config.retrieval_weight * retrieval
        if self.ranker is not None:
            ranking = self.ranking_task(
                labels=features[F.LABEL][:, None],
                predictions=outputs["score"][:, None],
                sample_weight=weight,
            )
            self.ranking_loss.update_state(ranking)
            loss += self.config.ranking.weight * ranking
        return loss

    def embed_items(self, item_ids: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """`[n]` item ids -> `[n, embedding_dim]` float32 candidate embeddings."""
        parts = [
            self.candidate_model(tf.constant(item_ids[i : i + batch_size].astype(str))).numpy()
            for i in range(0, len(item_ids), batch_size)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.config.embedding_dim))

    def embed_queries(self, queries: dict[str, np.ndarray], batch_size: int = 4096) -> np.ndarray:
        """Query features (`QUERY_FEATURES`, each `[n, ...]`) -> `[n, embedding_dim]`."""
        n = len(queries[F.USER_ID])
        parts = []
        for start in range(0, n, batch_size):
            batch = {name: tf.constant(values[start : start + batch_size])
                     for name, values in queries.items()}  # fmt: skip
            parts.append(self.query_model(batch).numpy())
        return np.concatenate(parts) if parts else np.zeros((0, self.config.embedding_dim))
