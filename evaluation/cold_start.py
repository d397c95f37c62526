"""Cold-start evaluation: items removed from training entirely, retrieved through the text tower.

`hold_out_items` (`evaluation.cold_start_data`, re-exported here) derives a data directory in
which a random share of the items that users interact with in the eval split never occur in
training: their train rows are dropped, they are stripped from every train history, and the
item vocabulary is recounted without them. They stay in the catalog (with their title,
description and categories), so the candidate tower still embeds them: from text and
categories, with the shared OOV id row. `evaluate_cold_start` trains a text model and an
id-only model on the derived data and measures, on the eval users who interacted with a
held-out item, how well each retrieves those items from the whole catalog, next to random
scores.

Eval and test splits are copied unchanged, so an eval history may still name a held-out item
the user saw before the split: that is their real past at serving time. The history encoder
looks items up by id only, so such an item maps to the OOV row and carries no text signal.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np

from evaluation.baselines import random_scorer
from evaluation.cold_start_data import STAT_COLD_START as STAT_COLD_START
from evaluation.cold_start_data import hold_out_items as hold_out_items
from evaluation.metrics import accuracy_metrics, check_ks
from evaluation.sources import lists_from_scorer
from recstack import config as config_lib
from recstack import features as F
from trainer.config import TEXT_NONE, TrainConfig
from trainer.evaluation import EvalSet, build_eval_set, embedding_scorer

#: Systems of `ColdStartResult.metrics`, in report order.
TEXT_MODEL, ID_ONLY, RANDOM = "text_model", "id_only", "random"
#: Metric families reported per cut-off (`evaluation.metrics.accuracy_metrics` names).
METRIC_FAMILIES = ("recall", "ndcg", "hit_rate")


def metric_names(ks: Sequence[int]) -> list[str]:
    """`recall@k`, `ndcg@k` and `hit_rate@k` for every cut-off, in report order."""
    return [f"{family}@{k}" for family in METRIC_FAMILIES for k in ks]


@dataclasses.dataclass(frozen=True)
class ColdStartResult:
    """What `evaluate_cold_start` measured.

    Attributes:
      metrics: `{system: {metric: value}}` for `TEXT_MODEL`, `ID_ONLY` and `RANDOM` on the cold
        eval set (`metric_names(ks)`); the shape of `EvaluationReport.cold_start`.
      held_out: The held-out item ids, sorted.
      cold_users: Eval users with at least one held-out item (the users averaged over).
      catalog_items: Candidates per user (the whole catalog); random recall@k is about
        k / (catalog_items - the user's training items).
    """

    metrics: dict[str, dict[str, float]]
    held_out: tuple[str, ...]
    cold_users: int
    catalog_items: int

    def to_dict(self) -> dict[str, dict[str, float]]:
        """JSON-ready form: the systems' metrics plus `meta` with the counts."""
        meta = {"held_out_items": len(self.held_out), "cold_users": self.cold_users,
                "catalog_items": self.catalog_items}  # fmt: skip
        return {**self.metrics, "meta": meta}


def cold_eval_set(layout: F.DataLayout, held_out: Sequence[str], history_length: int) -> EvalSet:
    """The eval set of `trainer.evaluation.build_eval_set` restricted to cold items.

    Candidates are the whole catalog and each user's training items are excluded, as usual;
    only users with at least one held-out item among their eval items are kept, and their
    relevant sets hold the held-out items only.

    Args:
      layout: The derived data directory (`hold_out_items` output).
      held_out: The held-out item ids.
      history_length: Query history length of the evaluated model.

    Raises:
      ValueError: a held-out id is not in the catalog, or no eval user has a held-out item.
    """
    full = build_eval_set(layout, history_length)
    index = {item: i for i, item in enumerate(full.corpus_ids)}
    missing = [item for item in held_out if item not in index]
    if missing:
        raise ValueError(f"held-out items {missing[:3]} are not in the catalog {layout.root}")
    cold = {index[item] for item in held_out}
    relevant = [wanted & cold for wanted in full.relevant]
    rows = [r for r, wanted in enumerate(relevant) if wanted]
    if not rows:
        raise ValueError(
            f"no eval user of {layout.root} interacted with any of the {len(cold)} held-out "
            "items; hold out more items or use a longer eval period"
        )
    return EvalSet(
        corpus_ids=full.corpus_ids,
        popularity=full.popularity,
        users=full.users[rows],
        exclude=[full.exclude[r] for r in rows],
        relevant=[relevant[r] for r in rows],
        queries={name: values[rows] for name, values in full.queries.items()},
    )


def evaluate_cold_start(
    data_dir: str,
    work_dir: str,
    text_config_mode: str = "frozen",
    fraction: float = 0.1,
    seed: int = 0,
    ks: Sequence[int] = (10, 50, 100),
    train_overrides: dict | None = None,
) -> ColdStartResult:
    """Holds items out, trains a text and an id-only model without them, and scores both.

    Writes `work_dir/data` (the derived data), `work_dir/text_model` and `work_dir/id_only`
    (training runs). Both models share the `TrainConfig` built from `train_overrides` (the
    `train` section's keys, nested sections as dicts) except `text.mode`: `text_config_mode`
    for the text model, `none` for the id-only one. The id-only model still sees the items'
    categories unless `use_categories` is false; its cold items otherwise share the OOV row.

    Args:
      data_dir: Output directory of `recstack ingest`.
      work_dir: Missing or empty directory for the derived data and the runs.
      text_config_mode: `TextConfig.mode` of the text model (not `none`).
      fraction, seed: Passed to `hold_out_items`.
      ks: Cut-offs.
      train_overrides: TrainConfig fields; None trains with the defaults.

    Returns:
      The metrics of the text model, the id-only model and random scores on `cold_eval_set`.

    Raises:
      ValueError: `text_config_mode` is `none`, or the arguments of `hold_out_items` or of
        `TrainConfig` are invalid.
    """
    from trainer.train import train  # Lazy: importing the trainer builds Keras layers.

    ks = check_ks(ks)  # Before hours of training, not after.
    if text_config_mode == TEXT_NONE:
        raise ValueError("text_config_mode='none' has no text tower; use 'frozen' or a fine-tune")
    base = config_lib.from_dict(TrainConfig, train_overrides or {})
    configs = {
        TEXT_MODEL: dataclasses.replace(
            base, text=dataclasses.replace(base.text, mode=text_config_mode)
        ),
        ID_ONLY: dataclasses.replace(base, text=dataclasses.replace(base.text, mode=TEXT_NONE)),
    }
    derived = os.path.join(work_dir, "data")
    held_out = hold_out_items(data_dir, derived, fraction, seed)
    eval_set = cold_eval_set(F.DataLayout(derived), held_out, base.query.history_length)
    metrics = {}
    for system, config in configs.items():
        run_dir = os.path.join(work_dir, system)
        train(config, derived, run_dir, verbose=0)
        metrics[system] = _run_metrics(run_dir, eval_set, ks)
    metrics[RANDOM] = _metrics(random_scorer(eval_set, seed), eval_set, ks)
    return ColdStartResult(metrics, tuple(held_out), len(eval_set.users), len(eval_set.corpus_ids))


def _run_metrics(run_dir: str, eval_set: EvalSet, ks: Sequence[int]) -> dict[str, float]:
    """Metrics of a finished run's restored model, scoring the whole catalog exactly."""
    from trainer.train import restore_model

    model, _, _ = restore_model(run_dir)
    scorer = embedding_scorer(
        model.embed_queries(eval_set.queries), model.embed_items(eval_set.corpus_ids)
    )
    return _metrics(scorer, eval_set, ks)


def _metrics(
    scorer: Callable[[np.ndarray], np.ndarray], eval_set: EvalSet, ks: Sequence[int]
) -> dict[str, float]:
    """`metric_names(ks)` of the scorer's top `max(ks)` lists (training items excluded)."""
    top, _ = lists_from_scorer(scorer, eval_set, max(ks))
    values = accuracy_metrics(top, eval_set.relevant, ks)
    return {name: values[name] for name in metric_names(ks)}
