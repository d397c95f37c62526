"""The TFRS basic-retrieval recipe: the "what the tutorial gives you" baseline.

As in the TensorFlow Recommenders "basic retrieval" tutorial: a user-id tower and an item-id
tower (StringLookup + 32-wide Embedding each), `tfrs.tasks.Retrieval` (in-batch softmax, no
sampling-bias correction), Adagrad with learning rate 0.1. Trained on the training split of an
ingested data directory and scored with the full-corpus protocol of `trainer.evaluation`, so
its metrics compare directly with the stack's model (`recstack evaluate`, `bench_train.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from recstack import features as F
from trainer import data, evaluation

DIM = 32
LEARNING_RATE = 0.1
#: The tutorial's training batch size.
TUTORIAL_BATCH_SIZE = 8192
#: Examples in the training shuffle buffer.
SHUFFLE_BUFFER = 100_000


def _id_tower(vocabulary: tuple[str, ...]) -> tf_keras.Sequential:
    return tf_keras.Sequential(
        [
            tf_keras.layers.StringLookup(vocabulary=list(vocabulary), mask_token=None),
            tf_keras.layers.Embedding(len(vocabulary) + 1, DIM),
        ]
    )


class BasicRetrieval(tfrs.Model):
    """User id x item id two-tower model.

    Towers: `user_model` / `item_model` map string ids `[batch]` to `[batch, DIM]` embeddings
    (ids outside the training vocabulary share one out-of-vocabulary row).
    Call (loss): features with `F.USER_ID` and `F.ITEM_ID`, string `[batch]`.
    """

    def __init__(self, users: tuple[str, ...], items: tuple[str, ...]) -> None:
        super().__init__()
        self.user_model = _id_tower(users)
        self.item_model = _id_tower(items)
        self.task = tfrs.tasks.Retrieval()

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.task(self.user_model(features[F.USER_ID]), self.item_model(features[F.ITEM_ID]))


def build_recipe(
    layout: F.DataLayout, batch_size: int, seed: int
) -> tuple[BasicRetrieval, tf.data.Dataset]:
    """Seeds TF, then builds the compiled (untrained) recipe and its training dataset.

    Args:
      layout: Ingested data directory (training split and vocabularies).
      batch_size: Training examples per batch.
      seed: Seed of weight initialisation and shuffling.

    Returns:
      `(model, dataset)`: the dataset yields `{F.USER_ID, F.ITEM_ID}` string `[batch]` dicts.

    Raises:
      ValueError: `batch_size` is not positive.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be at least 1")
    tf_keras.utils.set_random_seed(seed)
    train = data.make_dataset(
        layout.train_pattern, batch_size, shuffle_buffer=SHUFFLE_BUFFER, seed=seed
    ).map(lambda batch: {F.USER_ID: batch[F.USER_ID], F.ITEM_ID: batch[F.ITEM_ID]})
    model = BasicRetrieval(
        data.read_vocabulary(layout.user_vocab).tokens,
        data.read_vocabulary(layout.item_vocab).tokens,
    )
    model.compile(optimizer=tf_keras.optimizers.Adagrad(learning_rate=LEARNING_RATE))
    return model, train


def train_recipe(
    layout: F.DataLayout,
    epochs: int,
    batch_size: int = TUTORIAL_BATCH_SIZE,
    seed: int = 0,
    callbacks: Sequence[tf_keras.callbacks.Callback] = (),
) -> BasicRetrieval:
    """Trains the recipe on the training split of `layout` for `epochs` epochs.

    Raises:
      ValueError: `epochs` or `batch_size` is not positive.
    """
    if epochs < 1:
        raise ValueError(f"epochs={epochs} must be at least 1")
    model, train = build_recipe(layout, batch_size, seed)
    model.fit(train, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return model


def recipe_scorer(
    model: BasicRetrieval, eval_set: evaluation.EvalSet
) -> Callable[[np.ndarray], np.ndarray]:
    """Dot-product scorer of a trained recipe over `eval_set`.

    The user and corpus embeddings (`[num_users, DIM]`, `[num_items, DIM]`) are computed once;
    the scorer maps `[b]` user rows to `[b, num_items]` float32 scores.
    """
    queries = model.user_model(tf.constant(eval_set.queries[F.USER_ID].astype(str))).numpy()
    items = model.item_model(tf.constant(eval_set.corpus_ids.astype(str))).numpy()
    return evaluation.embedding_scorer(queries, items)


def train_and_evaluate(
    layout: F.DataLayout,
    eval_set: evaluation.EvalSet,
    epochs: int,
    batch_size: int,
    ks: tuple[int, ...],
    seed: int,
    callbacks: Sequence[tf_keras.callbacks.Callback] = (),
) -> list[dict[str, float]]:
    """Trains the recipe and evaluates it after every epoch.

    Returns:
      The metrics (`evaluation.metric_names(ks)`) after each epoch.
    """
    model, train = build_recipe(layout, batch_size, seed)
    per_epoch = []
    for _ in range(epochs):
        model.fit(train, epochs=1, verbose=0, callbacks=list(callbacks))
        per_epoch.append(evaluation.evaluate(recipe_scorer(model, eval_set), eval_set, ks))
    return per_epoch
