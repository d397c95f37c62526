"""The two-tower retrieval model (TFRS) on user id and item id."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from recstack import features as F
from trainer.config import TrainConfig
from trainer.data import Vocabulary
from trainer.id_embedding import IdEmbedding


class SamplingProbability(tf_keras.layers.Layer):
    """Maps item ids to their in-batch sampling probability (for logQ correction).

    Args:
      vocabulary: Item vocabulary with training counts.

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


class TwoTowerModel(tfrs.Model):
    """User-id tower x item-id tower, trained with in-batch sampled softmax.

    Args:
      user_vocabulary: Training users with counts.
      item_vocabulary: Training items with counts (also the source of sampling probabilities).
      config: Training hyperparameters.

    Attributes:
      query_model: `[batch]` user ids -> `[batch, embedding_dim]`.
      candidate_model: `[batch]` item ids -> `[batch, embedding_dim]`.
    """

    def __init__(
        self, user_vocabulary: Vocabulary, item_vocabulary: Vocabulary, config: TrainConfig
    ) -> None:
        super().__init__()
        self.config = config
        self.query_model = IdEmbedding(
            user_vocabulary.tokens, config.embedding_dim, config.num_oov_buckets, name="user_tower"
        )
        self.candidate_model = IdEmbedding(
            item_vocabulary.tokens, config.embedding_dim, config.num_oov_buckets, name="item_tower"
        )
        self.sampling_probability = SamplingProbability.from_vocabulary(item_vocabulary)
        self.task = tfrs.tasks.Retrieval(
            temperature=config.temperature,
            remove_accidental_hits=config.remove_accidental_hits,
        )

    def call(self, features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Both towers on a batch: `{user_id, item_id: [batch]}` -> `[batch, embedding_dim]` each.

        Calling the model once builds every variable, which Keras' BackupAndRestore needs
        before `fit` to restore an interrupted run.
        """
        return {
            F.USER_ID: self.query_model(features[F.USER_ID]),
            F.ITEM_ID: self.candidate_model(features[F.ITEM_ID]),
        }

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        """In-batch softmax loss of a batch `{user_id: [batch], item_id: [batch], ...}`."""
        item_ids = features[F.ITEM_ID]
        query = self.query_model(features[F.USER_ID])
        candidate = self.candidate_model(item_ids)
        probability = self.sampling_probability(item_ids) if self.config.logq_correction else None
        return self.task(
            query,
            candidate,
            candidate_sampling_probability=probability,
            candidate_ids=item_ids if self.config.remove_accidental_hits else None,
            compute_metrics=False,
            compute_batch_metrics=False,
        )

    def embed_items(self, item_ids: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """`[n]` item ids -> `[n, embedding_dim]` float32 candidate embeddings."""
        return _embed(self.candidate_model, item_ids, batch_size)

    def embed_users(self, user_ids: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """`[n]` user ids -> `[n, embedding_dim]` float32 query embeddings."""
        return _embed(self.query_model, user_ids, batch_size)


def _embed(tower: tf_keras.layers.Layer, ids: np.ndarray, batch_size: int) -> np.ndarray:
    parts = [
        tower(tf.constant(ids[start : start + batch_size], dtype=tf.string)).numpy()
        for start in range(0, len(ids), batch_size)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
