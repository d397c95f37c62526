"""Steck calibration against hand-computed category distributions and a from-scratch KL."""

import math

import numpy as np
import pytest

from evaluation.calibration import calibrated_rerank, user_category_distributions


def _kl(top, categories, target, alpha=0.01):
    """Steck's KL(p || (1 - alpha) q + alpha p) for one list, from scratch."""
    mass = {}
    for i in top:
        for c in categories[i]:
            mass[c] = mass.get(c, 0.0) + 1.0 / len(categories[i]) / len(top)
    return sum(p * math.log(p / ((1 - alpha) * mass.get(c, 0.0) + alpha * p))
               for c, p in target.items() if p > 0)  # fmt: skip


def test_user_category_distributions():
    categories = [["Drama"], ["Comedy", "Drama"], ["Action"], []]
    dist = user_category_distributions([[0, 1, 3, -1], []], categories)
    # Columns: Action, Comedy, Drama. Item 3 has no categories and adds no mass.
    np.testing.assert_allclose(dist, [[0.0, 0.25, 0.75], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="is a string"):
        user_category_distributions([[0]], ["Drama|Comedy"])


def test_calibration_moves_the_list_towards_the_user_categories():
    # The 8 most relevant candidates are dramas; the user's history is 60% drama, 40% comedy.
    categories = [["Drama"]] * 8 + [["Comedy"]] * 4
    pool = np.arange(12)[None]
    relevance = np.linspace(1.0, 0.0, 12, dtype=np.float32)[None]
    history = [[0, 1, 2, 8, 9]]
    dist = user_category_distributions(history, categories)
    target = {"Comedy": 0.4, "Drama": 0.6}
    kls = []
    for lam in [0.0, 0.1, 0.3, 0.6, 0.9]:
        top = calibrated_rerank(pool, relevance, categories, dist, 5, lam)[0]
        if lam == 0.0:
            assert top.tolist() == [0, 1, 2, 3, 4]
        kls.append(_kl(top, categories, target))
    assert all(later <= earlier + 1e-9 for earlier, later in zip(kls, kls[1:], strict=False))
    assert kls[-1] < 0.05 < kls[0]
