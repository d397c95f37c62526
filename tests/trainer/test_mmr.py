"""MMR re-ranking against a plain-Python greedy reference, and the candidate index against
exact search."""

import numpy as np
import pytest
import tensorflow as tf

from trainer.candidate_index import BRUTE_FORCE, MISSING, SCANN, CandidateIndex
from trainer.mmr import mmr_select, scaled_relevance


def _reference_mmr(relevance, embeddings, valid, k, lam):
    """Textbook greedy MMR for one list, written independently of the TF version."""
    rel = np.asarray(relevance, np.float64)
    ok = [i for i in range(len(rel)) if valid[i]]
    if ok:
        low, high = min(rel[ok]), max(rel[ok])
        scaled = {i: (rel[i] - low) / (high - low) if high > low else 1.0 for i in ok}
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    chosen = []
    while len(chosen) < k and len(chosen) < len(ok):

        def gain(i):
            if not chosen:
                return scaled[i]
            return (1 - lam) * scaled[i] - lam * max(float(unit[i] @ unit[j]) for j in chosen)

        chosen.append(max((i for i in ok if i not in chosen), key=lambda i: (gain(i), -i)))
    return chosen


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
def test_mmr_matches_the_greedy_reference(lam):
    rng = np.random.default_rng(7)
    batch, candidates, dim, k = 4, 12, 5, 6
    relevance = rng.normal(size=(batch, candidates)).astype(np.float32)
    embeddings = rng.normal(size=(batch, candidates, dim)).astype(np.float32)
    valid = rng.random((batch, candidates)) > 0.2
    valid[3] = False
    valid[3, :2] = True  # A list with fewer valid candidates than k.
    positions, selected = mmr_select(
        tf.constant(relevance), tf.constant(embeddings), tf.constant(valid), tf.constant(k),
        tf.fill([batch], lam),
    )  # fmt: skip
    for row in range(batch):
        expected = _reference_mmr(relevance[row], embeddings[row], valid[row], k, lam)
        got = positions.numpy()[row][selected.numpy()[row]].tolist()
        assert got == expected, row
    assert selected.numpy()[3].tolist() == [True, True] + [False] * (k - 2)


def test_lambda_zero_is_the_ranking_order_and_lambda_raises_diversity():
    rng = np.random.default_rng(3)
    # Two tight clusters; the most relevant items all sit in the first one.
    centers = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    cluster = np.array([0] * 6 + [1] * 6)
    embeddings = centers[cluster] + 0.05 * rng.normal(size=(12, 2)).astype(np.float32)
    relevance = np.where(cluster == 0, 2.0, 1.0) + 0.01 * np.arange(12)[::-1]
    args = (tf.constant(relevance[None], tf.float32), tf.constant(embeddings[None]),
            tf.ones([1, 12], tf.bool), tf.constant(4))  # fmt: skip
    ranked, _ = mmr_select(*args, tf.constant([0.0]))
    assert ranked.numpy()[0].tolist() == np.argsort(-relevance)[:4].tolist()
    diverse, _ = mmr_select(*args, tf.constant([0.8]))
    assert set(cluster[ranked.numpy()[0]]) == {0}
    assert set(cluster[diverse.numpy()[0]]) == {0, 1}


def test_scaled_relevance_spans_zero_to_one_over_valid_entries():
    scaled = scaled_relevance(
        tf.constant([[3.0, 1.0, 100.0, 2.0], [5.0, 5.0, 0.0, 0.0]]),
        tf.constant([[True, True, False, True], [True, True, False, False]]),
    ).numpy()
    np.testing.assert_allclose(scaled, [[1.0, 0.0, 0.0, 0.5], [1.0, 1.0, 0.0, 0.0]])


@pytest.mark.parametrize("kind", [BRUTE_FORCE, SCANN])
def test_candidate_index_returns_the_exact_top_k_for_any_k(kind):
    rng = np.random.default_rng(0)
    items = rng.normal(size=(3000, 16)).astype(np.float32)
    queries = rng.normal(size=(8, 16)).astype(np.float32)
    index = CandidateIndex(items, kind, num_leaves=50, num_leaves_to_search=50,
                           num_reordering_candidates=20)  # fmt: skip
    exact = np.argsort(-(queries @ items.T), axis=1)
    # k above the configured re-ordering count still gets k exactly re-scored results.
    for k in (25, 60):
        scores, rows = index.search(tf.constant(queries), tf.constant(k))
        assert rows.shape == (8, k)
        recall = np.mean([len(set(exact[q, :k]) & set(rows.numpy()[q])) / k for q in range(8)])
        # Gaussian noise is ScaNN's hardest case (every dot product alike); real embeddings
        # reach the export's 0.95 gate.
        assert recall >= (1.0 if kind == BRUTE_FORCE else 0.9)
        np.testing.assert_allclose(
            scores.numpy(), np.take_along_axis(queries @ items.T, rows.numpy(), 1), rtol=1e-4
        )


def test_a_starved_scann_search_pads_with_missing_rows():
    rng = np.random.default_rng(1)
    items = rng.normal(size=(2000, 8)).astype(np.float32)
    index = CandidateIndex(items, SCANN, num_leaves=40, num_leaves_to_search=1,
                           num_reordering_candidates=10)  # fmt: skip
    scores, rows = index.search(tf.constant(items[:3]), tf.constant(400))
    assert rows.shape == (3, 400)
    missing = rows.numpy() == MISSING
    assert missing.any() and np.all(np.isneginf(scores.numpy()[missing]))
    for row, absent in zip(rows.numpy(), missing, strict=True):
        found = row[~absent]
        assert len(set(found.tolist())) == len(found) and found.min() >= 0
