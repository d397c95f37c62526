"""The TFRS basic-retrieval recipe, the baseline of `bench_train.py`.

As in the TensorFlow Recommenders "basic retrieval" tutorial: a user-id tower and an item-id
tower (StringLookup + 32-wide Embedding each), `tfrs.tasks.Retrieval` (in-batch softmax, no
sampling-bias correction), Adagrad with learning rate 0.1. Trained on the same training split
and scored with the same full-corpus protocol (`trainer.evaluation`) as the stack's model.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from recstack import features as F
from trainer import data, evaluation

DIM = 32
LEARNING_RATE = 0.1
#: The tutorial's training batch size.
TUTORIAL_BATCH_SIZE = 8192


def _id_tower(vocabulary: tuple[str, ...]) -> tf_keras.Sequential:
    return tf_keras.Sequential(
        [
            tf_keras.layers.StringLookup(vocabulary=list(vocabulary), mask_token=None),
            tf_keras.layers.Embedding(len(vocabulary) + 1, DIM),
        ]
    )


class BasicRetrieval(tfrs.Model):
    """User id x item id two-tower model.

    Call (loss): features with `F.USER_ID` and `F.ITEM_ID`, string `[batch]`.
    """

    def __init__(self, users: tuple[str, ...], items: tuple[str, ...]) -> None:
        super().__init__()
        self.user_model = _id_tower(users)
        self.item_model = _id_tower(items)
        self.task = tfrs.tasks.Retrieval()

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        return self.task(self.user_model(features[F.USER_ID]), self.item_model(features[F.ITEM_ID]))


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
    tf_keras.utils.set_random_seed(seed)
    train = data.make_dataset(
        layout.train_pattern, batch_size, shuffle_buffer=100_000, seed=seed
    ).map(lambda batch: {F.USER_ID: batch[F.USER_ID], F.ITEM_ID: batch[F.ITEM_ID]})
    model = BasicRetrieval(
        data.read_vocabulary(layout.user_vocab).tokens,
        data.read_vocabulary(layout.item_vocab).tokens,
    )
    model.compile(optimizer=tf_keras.optimizers.Adagrad(learning_rate=LEARNING_RATE))
    per_epoch = []
    for _ in range(epochs):
        model.fit(train, epochs=1, verbose=0, callbacks=list(callbacks))
        queries = model.user_model(tf.constant(eval_set.queries[F.USER_ID].astype(str))).numpy()
        items = model.item_model(tf.constant(eval_set.corpus_ids.astype(str))).numpy()
        metrics = evaluation.evaluate(evaluation.embedding_scorer(queries, items), eval_set, ks)
        per_epoch.append(metrics)
    return per_epoch
