"""The multitask loss, checked against hand computations on a 3x3 batch."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from recstack import features as F
from trainer.catalog import catalog_from_rows
from trainer.config import QueryConfig, RankingConfig, TrainConfig
from trainer.data import Vocabulary
from trainer.model import RecommenderModel

ITEMS = Vocabulary(("a", "b", "c"), np.array([6, 3, 1]), np.array([0, 0, 0]))
USERS = Vocabulary(("u1", "u2", "u3"), np.array([1, 1, 1]), np.array([0, 0, 0]))
CATALOG = catalog_from_rows([{F.ITEM_ID: i, F.CATEGORIES: ["x"]} for i in ("a", "b", "c")])
BASE = TrainConfig(embedding_dim=4, temperature=0.5, query=QueryConfig(history_length=2))


def _batch(items=("a", "b", "a")):
    n = len(items)
    return {
        F.USER_ID: tf.constant(["u1", "u2", "zzz"][:n]),
        F.ITEM_ID: tf.constant(list(items)),
        F.HISTORY_ITEM_IDS: tf.constant([["b", ""], ["", ""], ["c", "a"]][:n]),
        F.HOUR: tf.constant([1, 2, 3][:n], tf.int64),
        F.WEEKDAY: tf.constant([0, 1, 2][:n], tf.int64),
        F.LABEL: tf.constant([1.0, 0.0, 1.0][:n]),
        F.WEIGHT: tf.constant([1.0, 2.0, 0.5][:n]),
    }


def _softmax_loss(logits, weights):
    """Sum over rows of weight * -log softmax(logits)[i, i] (float64)."""
    logits = logits - logits.max(axis=1, keepdims=True)
    log_prob = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return float(-(np.diag(log_prob) * weights).sum())


def _model(**changes):
    tf.keras.utils.set_random_seed(0)
    return RecommenderModel(USERS, ITEMS, CATALOG, dataclasses.replace(BASE, **changes))


def _hand_loss(model, batch, logq, remove_hits):
    out = model(batch)
    logits = out["query"].numpy().astype(np.float64) @ out["candidate"].numpy().T.astype(np.float64)
    logits /= BASE.temperature
    items = batch[F.ITEM_ID].numpy()
    if logq:
        probability = {b"a": 0.6, b"b": 0.3, b"c": 0.1}
        logits -= np.log([probability[i] for i in items])[None, :]
    if remove_hits:
        same = items[:, None] == items[None, :]
        np.fill_diagonal(same, False)
        logits[same] = -1e9
    return _softmax_loss(logits, batch[F.WEIGHT].numpy().astype(np.float64))


@pytest.mark.parametrize("logq", [True, False])
@pytest.mark.parametrize("remove_hits", [True, False])
def test_retrieval_loss_matches_the_hand_computation(logq, remove_hits):
    model = _model(logq_correction=logq, remove_accidental_hits=remove_hits)
    batch = _batch()
    got = float(model.compute_loss(batch))
    assert got == pytest.approx(_hand_loss(model, batch, logq, remove_hits), rel=1e-4)


def test_logq_and_accidental_hits_change_the_loss():
    batch = _batch()
    plain = float(_model(logq_correction=False, remove_accidental_hits=False).compute_loss(batch))
    logq = float(_model(logq_correction=True, remove_accidental_hits=False).compute_loss(batch))
    hits = float(_model(logq_correction=False, remove_accidental_hits=True).compute_loss(batch))
    assert logq != pytest.approx(plain, rel=1e-3)
    # Row 0 and row 2 are both item "a": removing the accidental hit lowers their losses.
    assert hits < plain


def test_ranking_loss_is_added_with_its_weight():
    ranking = RankingConfig(weight=0.5, objective="regression", cross_layers=1)
    model = _model(ranking=ranking, logq_correction=False, remove_accidental_hits=False)
    batch = _batch()
    scores = model(batch)["score"].numpy().astype(np.float64)
    weights = batch[F.WEIGHT].numpy()
    labels = batch[F.LABEL].numpy()
    # Keras' MSE with sample weights, SUM_OVER_BATCH_SIZE: sum(w * err^2) / batch.
    mse = float((weights * (scores - labels) ** 2).sum() / len(labels))
    retrieval = _hand_loss(model, batch, logq=False, remove_hits=False)
    assert float(model.compute_loss(batch)) == pytest.approx(retrieval + 0.5 * mse, rel=1e-4)


def test_binary_ranking_reports_auc_and_regression_rmse():
    binary = _model(ranking=RankingConfig(weight=1.0, objective="binary"))
    regression = _model(ranking=RankingConfig(weight=1.0))
    assert [m.name for m in binary.ranking_task._ranking_metrics] == ["auc"]
    assert [m.name for m in regression.ranking_task._ranking_metrics] == ["rmse"]


def test_cold_catalog_items_get_their_own_id_rows():
    catalog = catalog_from_rows([{F.ITEM_ID: i} for i in ("a", "b", "c", "cold")])
    model = RecommenderModel(USERS, ITEMS, catalog, BASE)
    assert model.item_embedding.vocabulary == ["a", "b", "c", "cold"]
    vectors = model.embed_items(np.array(["cold", "unknown"], dtype=object))
    assert not np.allclose(vectors[0], vectors[1])
