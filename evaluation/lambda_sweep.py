"""The accuracy/diversity trade-off of MMR re-ranking over `mmr_lambda`.

- `lambda_sweep`: runs `evaluation.rerank.mmr_rerank` at each lambda and scores the lists.
- `choose_lambda`: the most diverse lambda within a relative accuracy budget vs lambda = 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from evaluation.rerank import mmr_rerank


def lambda_sweep(
    pool: np.ndarray,
    relevance: np.ndarray,
    item_embeddings: np.ndarray,
    k: int,
    lambdas: Sequence[float],
    evaluate_fn: Callable[[np.ndarray], dict[str, float]],
) -> list[dict[str, float]]:
    """Runs `mmr_rerank` at each lambda and scores the lists with `evaluate_fn(top) -> dict`
    (e.g. NDCG@10 and intra-list diversity).

    Returns:
      One dict per lambda, in the given order: `{"mmr_lambda": lam, **evaluate_fn(top)}`.
    """
    return [
        {
            "mmr_lambda": float(lam),
            **evaluate_fn(mmr_rerank(pool, relevance, item_embeddings, k, lam)),
        }
        for lam in lambdas
    ]


def choose_lambda(
    points: Sequence[dict[str, float]],
    accuracy_key: str,
    diversity_key: str,
    max_accuracy_loss: float = 0.03,
) -> tuple[float, list[dict[str, float]]]:
    """Picks the most diverse lambda whose relative accuracy loss vs lambda = 0 is in budget.

    The loss of a point is `(acc_0 - acc) / acc_0` (0 when `acc_0 <= 0`); ties on diversity go
    to the smaller lambda. lambda = 0 always qualifies, so a choice always exists.

    Args:
      points: `lambda_sweep` output; must contain lambda 0.
      accuracy_key, diversity_key: metric names in the points. max_accuracy_loss: >= 0.

    Returns:
      `(lambda, curve)`: curve is the points sorted by lambda, each with
      `relative_accuracy_loss` and `within_budget` added.
    """
    curve = sorted((dict(p) for p in points), key=lambda p: p["mmr_lambda"])
    base = [p for p in curve if p["mmr_lambda"] == 0.0]
    if not base:
        raise ValueError(
            "choose_lambda needs a point at mmr_lambda=0 as the accuracy baseline; "
            f"got lambdas {[p['mmr_lambda'] for p in curve]}"
        )
    missing = {accuracy_key, diversity_key} - set(base[0])
    if missing:
        raise ValueError(f"metrics {sorted(missing)} not in the points; have {sorted(base[0])}")
    reference = base[0][accuracy_key]
    for p in curve:
        loss = (reference - p[accuracy_key]) / reference if reference > 0 else 0.0
        p["relative_accuracy_loss"] = float(loss)
        p["within_budget"] = bool(loss <= max_accuracy_loss + 1e-12)
    best = max(
        (p for p in curve if p["within_budget"]), key=lambda p: (p[diversity_key], -p["mmr_lambda"])
    )
    return best["mmr_lambda"], curve
