"""The model's lists re-ranked by each control (`evaluation.rerank`), as extra systems of the
report: MMR at the chosen lambda, category calibration, a novelty boost, and the business
filters (applied to every variant when configured)."""

from __future__ import annotations

import numpy as np

from evaluation.calibration import user_category_distributions
from evaluation.config import EvaluateConfig
from evaluation.rerank import ItemSideData, RerankConfig, rerank
from trainer.evaluation import EvalSet


def variant_configs(config: EvaluateConfig, chosen_lambda: float) -> dict[str, RerankConfig]:
    """`{system name: RerankConfig}` of `config.rerank_variants`."""
    filters = {"exclude_categories": config.exclude_categories,
               "exclude_items": config.exclude_items}  # fmt: skip
    made = {
        "mmr": RerankConfig(mmr_lambda=chosen_lambda, **filters),
        "calibrated": RerankConfig(calibration_lambda=config.calibration_lambda, **filters),
        "novelty": RerankConfig(novelty_beta=config.novelty_beta, **filters),
        "filtered": RerankConfig(**filters),
    }
    return {f"model+{name}": made[name] for name in config.rerank_variants}


def rerank_variants(
    pool: np.ndarray,
    relevance: np.ndarray,
    eval_set: EvalSet,
    side: ItemSideData,
    config: EvaluateConfig,
    chosen_lambda: float,
) -> dict[str, np.ndarray]:
    """Re-ranks the model's candidate `pool` `[U, P]` (scores `relevance` `[U, P]`) with each
    variant; returns `{system name: top [U, max(ks)]}`."""
    k = max(config.ks)
    configs = variant_configs(config, chosen_lambda)
    user_dist = None
    if any(c.calibration_lambda > 0 for c in configs.values()):
        history = [list(items) for items in eval_set.exclude]
        user_dist = user_category_distributions(history, side.categories)
    return {
        name: rerank(pool, relevance, side, variant, k, user_category_dist=user_dist)
        for name, variant in configs.items()
    }
