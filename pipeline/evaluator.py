"""Evaluator: the candidate's and the blessed model's quality on the same eval split, and the
blessing.

Both models are restored from their training runs and judged by `trainer.evaluation`'s
protocol on *this* run's data: every catalog item is a candidate (exact search; the export
already checked that the ScaNN index finds >= `export.min_recall` of the exact top k), each
user's training items are excluded, the relevant items are their new eval items, and the query
is the user's state at their first eval event. So the blessed model meets the new users, new
items and new days the candidate was trained for: ids it never saw get its out-of-vocabulary
rows. (The exported SavedModels are not used here: they carry every split's history and seen
items, as serving needs, which would leak the eval split.) The popularity baseline of the same
split is reported beside them.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence

from pipeline.artifacts import RUN_SUBDIR, SERVING_SUBDIR  # noqa: F401  (re-exported)
from pipeline.config import EvaluatorConfig
from recstack import features as F
from trainer import evaluation

log = logging.getLogger(__name__)
#: Beyond-accuracy figures reported with the accuracy metrics (at the smallest cut-off).
BEYOND_METRICS = ("coverage", "gini", "novelty", "mean_popularity")


def evaluate_run(
    run_dir: str, layout: F.DataLayout, ks: Sequence[int], eval_sets: dict | None = None
) -> dict[str, float]:
    """Retrieval metrics of a trained run's model on the eval split of `layout`.

    Args:
      run_dir: A training run (its config and latest checkpoint are restored).
      layout: The data to evaluate on: its catalog is the candidate corpus, its training items
        are excluded, its eval items are relevant.
      ks: Cut-offs.
      eval_sets: Cache of eval sets by history length, shared between the models evaluated
        on one split.

    Returns:
      `{name: value}` for `trainer.evaluation.metric_names(ks)`, plus the beyond-accuracy
      figures of the top `min(ks)` lists (`BEYOND_METRICS`: coverage, exposure Gini, novelty,
      mean popularity).
    """
    from trainer.train import restore_model

    model, config, _ = restore_model(run_dir)
    length = config.query.history_length
    cache = eval_sets if eval_sets is not None else {}
    if length not in cache:
        cache[length] = evaluation.build_eval_set(layout, length)
    eval_set = cache[length]
    scorer = evaluation.embedding_scorer(
        model.embed_queries(eval_set.queries), model.embed_items(eval_set.corpus_ids)
    )
    return scorer_metrics(scorer, eval_set, ks)


def scorer_metrics(scorer, eval_set: evaluation.EvalSet, ks: Sequence[int]) -> dict[str, float]:
    """Accuracy (`trainer.evaluation.metric_names(ks)`) and `BEYOND_METRICS` at `min(ks)`
    (`evaluation.beyond`) of one scoring pass over the eval users."""
    from evaluation.beyond import beyond_accuracy_metrics

    top = evaluation.top_lists(scorer, eval_set, max(ks))
    k = min(ks)
    beyond = beyond_accuracy_metrics(top[:, :k], eval_set.popularity, [k])
    return {
        **evaluation.metrics_of(top, eval_set, ks),
        **{name: beyond[f"{name}@{k}"] for name in BEYOND_METRICS},
    }


@dataclasses.dataclass(frozen=True)
class Blessing:
    """The Evaluator's verdict.

    Attributes:
      blessed: Whether the candidate may be pushed.
      reasons: One line per check, passed or failed, e.g.
        "recall@10 0.2100 >= blessed 0.2000 x (1 - 0.00)".
    """

    blessed: bool
    reasons: tuple[str, ...]


def decide(
    candidate: dict[str, float],
    blessed: dict[str, float] | None,
    popularity: dict[str, float],
    config: EvaluatorConfig,
) -> Blessing:
    """Blesses the candidate when it meets every absolute threshold, does not trail the
    blessed model by more than `max_relative_drop`, and (when asked) lifts popularity enough."""
    checks: list[tuple[bool, str]] = []
    for name, minimum in sorted(config.thresholds.items()):
        value = candidate[name]
        checks.append((value >= minimum, f"{name} {value:.4f} >= threshold {minimum:.4f}"))
    metric, value = config.metric, candidate[config.metric]
    if blessed is not None:
        floor = blessed[metric] * (1.0 - config.max_relative_drop)
        checks.append((value >= floor, f"{metric} {value:.4f} >= blessed {blessed[metric]:.4f} "
                                       f"x (1 - {config.max_relative_drop:.2f})"))  # fmt: skip
    else:
        checks.append((True, "no blessed model yet: nothing to compare with"))
    if config.min_lift_over_popularity > 0:
        floor = popularity[metric] * config.min_lift_over_popularity
        lift = config.min_lift_over_popularity
        text = f"{metric} {value:.4f} >= popularity {popularity[metric]:.4f} x {lift}"
        checks.append((value >= floor, text))
    reasons = tuple(("pass: " if ok else "FAIL: ") + text for ok, text in checks)
    return Blessing(blessed=all(ok for ok, _ in checks), reasons=reasons)


def evaluate_models(
    data_dir: str, candidate_uri: str, baseline_uri: str, config: EvaluatorConfig
) -> dict:
    """Evaluates the candidate (and the blessed model when `baseline_uri` is set) on the eval
    split of `data_dir` and decides the blessing.

    Returns:
      `{"metric", "candidate", "blessed_model" (or None), "baseline_model_uri",
      "popularity", "blessed", "reasons", "eval_users"}`.
    """
    layout, ks, eval_sets = F.DataLayout(data_dir), list(config.ks), {}
    candidate = evaluate_run(os.path.join(candidate_uri, RUN_SUBDIR), layout, ks, eval_sets)
    log.info("candidate %s: %s", candidate_uri, candidate)
    blessed = None
    if baseline_uri:
        blessed = evaluate_run(os.path.join(baseline_uri, RUN_SUBDIR), layout, ks, eval_sets)
        log.info("blessed %s: %s", baseline_uri, blessed)
    eval_set = next(iter(eval_sets.values()))
    popularity = scorer_metrics(evaluation.popularity_scorer(eval_set), eval_set, ks)
    verdict = decide(candidate, blessed, popularity, config)
    return {
        "metric": config.metric,
        "candidate": candidate,
        "blessed_model": blessed,
        "baseline_model_uri": baseline_uri,
        "popularity": popularity,
        "blessed": verdict.blessed,
        "reasons": list(verdict.reasons),
        "eval_users": len(eval_set.users),
    }
