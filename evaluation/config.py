"""Configuration of `recstack evaluate` (the `evaluate:` section of a config file)."""

from __future__ import annotations

import dataclasses

from evaluation.baselines import BASELINES, BaselineConfig
from evaluation.ips import IPSConfig


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    """What `recstack evaluate` measures.

    Attributes:
      ks: Cut-offs of every @k metric.
      baselines: Systems scored on the same split beside the model (`evaluation.baselines`).
      pool_size: Candidates per user that the re-ranking sweep re-orders (a training run's
        exact top `pool_size`; a served recommender re-ranks its own pool in the graph).
      lambdas: MMR diversity weights of the accuracy-diversity sweep (0 must be among them).
      sweep_accuracy: Accuracy metric of the sweep and of the budget ("name@k"; the sweep's
        lists have that k).
      sweep_diversity: Diversity metric of the sweep at the same k (the chosen lambda
        maximises it): "ild_categories@k", or "ild_embedding@k" (item text vectors; a model
        without them falls back to categories).
      max_accuracy_loss: Relative loss of `sweep_accuracy` (vs lambda 0) the chosen lambda may
        cost.
      light_max: Users with 1..`light_max` training events are "light", more are "heavy",
        none "new".
      head_share: Most popular items making up this share of interactions are the "head".
      tail_share: Least popular items making up this share of interactions are the "tail".
      rerank_variants: Re-ranked versions of the model's lists reported as extra systems
        ("model+<name>"; a training run only, whose candidate pool is at hand): "mmr" (at
        the chosen lambda), "calibrated" (categories calibrated to each user's history),
        "novelty" (self-information boost), "filtered" (business filters only).
      calibration_lambda: Weight of the calibration term (0..1) of "calibrated".
      novelty_beta: Weight of the novelty bonus of "novelty".
      exclude_categories: Business filter: categories never recommended by the variants.
      exclude_items: Business filter: item ids never recommended by the variants.
      batch_size: Users scored (or requested) at once.
      ips: Inverse-propensity weighting of the IPS metrics.
      baseline: Baseline hyperparameters.
    """

    ks: tuple[int, ...] = (10, 50, 100)
    baselines: tuple[str, ...] = ("popularity", "itemknn", "tfrs_recipe")
    pool_size: int = 200
    lambdas: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)
    sweep_accuracy: str = "ndcg@10"
    sweep_diversity: str = "ild_categories@10"
    max_accuracy_loss: float = 0.03
    light_max: int = 10
    head_share: float = 0.2
    tail_share: float = 0.2
    rerank_variants: tuple[str, ...] = ("mmr", "calibrated", "novelty")
    calibration_lambda: float = 0.5
    novelty_beta: float = 0.3
    exclude_categories: tuple[str, ...] = ()
    exclude_items: tuple[str, ...] = ()
    batch_size: int = 512
    ips: IPSConfig = IPSConfig()
    baseline: BaselineConfig = BaselineConfig()

    @property
    def sweep_k(self) -> int:
        """The cut-off of the sweep's lists."""
        return int(self.sweep_accuracy.rsplit("@", 1)[1])

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"evaluate.ks={list(self.ks)}: use positive cut-offs, e.g. [10, 50]")
        unknown = sorted(set(self.baselines) - set(BASELINES))
        if unknown:
            raise ValueError(
                f"evaluate.baselines: unknown {unknown}; choose from {sorted(BASELINES)}"
            )
        if 0.0 not in self.lambdas or any(not 0.0 <= x <= 1.0 for x in self.lambdas):
            raise ValueError(
                f"evaluate.lambdas={list(self.lambdas)}: values in [0, 1], including 0 (the "
                "accuracy reference)"
            )
        unknown = sorted(set(self.rerank_variants) - {"mmr", "calibrated", "novelty", "filtered"})
        if unknown:
            raise ValueError(
                f"evaluate.rerank_variants: unknown {unknown}; choose from mmr, calibrated, "
                "novelty, filtered"
            )
        for name in (self.sweep_accuracy, self.sweep_diversity):
            if "@" not in name or not name.rsplit("@", 1)[1].isdigit():
                raise ValueError(f"evaluate: {name!r} is not a metric at a cut-off, e.g. ndcg@10")
        if self.sweep_diversity.rsplit("@", 1)[1] != str(self.sweep_k):
            raise ValueError(
                f"evaluate.sweep_diversity={self.sweep_diversity!r} and sweep_accuracy="
                f"{self.sweep_accuracy!r} must share their cut-off"
            )
        if self.pool_size < max(self.ks):
            raise ValueError(
                f"evaluate.pool_size={self.pool_size} is below the largest cut-off "
                f"{max(self.ks)}; raise it"
            )
