"""`recstack evaluate`: one report of a model's accuracy and beyond-accuracy against baselines.

The model is a training run (exact scores over the whole catalog, in process), an exported
`recommender` (in process), or the recommender behind a running server (`--target`, gRPC).
Every system is asked for the same eval users' lists with their training items excluded
(`trainer.evaluation`'s protocol), and every list goes through the same metric code:
accuracy (`evaluation.metrics`), beyond accuracy (`evaluation.beyond`), IPS-weighted accuracy
(`evaluation.ips`) and the user and item segments (`evaluation.segments`). The MMR sweep
re-ranks the model's candidates at each lambda with the served recommender's own MMR.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
from collections.abc import Sequence

import numpy as np

from evaluation import beyond, ips, metrics, segments
from evaluation.baselines import build_baseline
from evaluation.config import EvaluateConfig
from evaluation.lambda_sweep import choose_lambda, lambda_sweep
from evaluation.report import MODEL, EvaluationReport
from evaluation.sources import lists_from_recommender, lists_from_scorer
from recstack import features as F
from trainer import evaluation as protocol
from trainer.catalog import PAD_CATEGORY, read_catalog

log = logging.getLogger(__name__)
#: Users whose full score rows feed the AUC (scoring every item for every user is the cost).
AUC_USERS = 2000


@dataclasses.dataclass
class Model:
    """The evaluated model, from one of the sources.

    Attributes:
      scorer: Full-catalog scorer `rows [b] -> [b, N]` (a training run), or None.
      call: A `recommender` call (`evaluation.sources`), or None.
      item_embeddings: `[N, d]` candidate embeddings for MMR, or None.
      text_vectors: `[N, t]` item text vectors for diversity, or None.
      history_length: Query history length the eval queries are built with.
      name: What is evaluated (for the report).
    """

    scorer: object = None
    call: object = None
    item_embeddings: np.ndarray | None = None
    text_vectors: np.ndarray | None = None
    history_length: int = 20
    name: str = ""


def model_from_run(run_dir: str, corpus_ids: np.ndarray) -> tuple[Model, object]:
    """The restored model of a training run; returns `(Model, keras model)`."""
    from trainer.train import restore_model

    keras_model, config, _ = restore_model(run_dir)
    vectors = keras_model.candidate_model.text_vectors
    text = None
    if vectors is not None:
        rows = {item: i for i, item in enumerate(keras_model.catalog.ids)}
        table = vectors.numpy()
        text = table[[rows.get(item, len(table) - 1) for item in corpus_ids]]
    model = Model(
        item_embeddings=keras_model.embed_items(corpus_ids),
        text_vectors=text,
        history_length=config.query.history_length,
        name=f"run {run_dir}",
    )
    return model, keras_model


def _system_metrics(
    top: np.ndarray,
    eval_set: protocol.EvalSet,
    config: EvaluateConfig,
    categories: Sequence[Sequence[str]],
    text_vectors: np.ndarray | None,
    popular_top: np.ndarray,
    weights: np.ndarray,
) -> tuple[dict[str, float], dict[str, int]]:
    """Every metric of one system's lists, and the evaluated and skipped user counts."""
    ks = list(config.ks)
    values = metrics.accuracy_metrics(top, eval_set.relevant, ks)
    counts = {key: int(values.pop(key)) for key in ("users_evaluated", "users_skipped")}
    values.update(
        beyond.beyond_accuracy_metrics(
            top,
            eval_set.popularity,
            ks,
            relevant=eval_set.relevant,
            item_categories=categories,
            item_embeddings=text_vectors,
            baseline_top=popular_top,
        )  # fmt: skip
    )
    values.update(ips.ips_metrics(top, eval_set.relevant, weights, ks))
    return values, counts


def _auc(scorer, eval_set: protocol.EvalSet, config: EvaluateConfig) -> float:
    rows = np.arange(min(AUC_USERS, len(eval_set.users)))
    parts, sizes = [], []
    for start in range(0, len(rows), config.batch_size):
        batch = rows[start : start + config.batch_size]
        parts.append(metrics.auc(np.asarray(scorer(batch)), [eval_set.relevant[r] for r in batch],
                                 [eval_set.exclude[r] for r in batch]))  # fmt: skip
        sizes.append(len(batch))
    return float(np.average(parts, weights=sizes)) if parts else float("nan")


def _segments(
    top: np.ndarray,
    eval_set: protocol.EvalSet,
    config: EvaluateConfig,
    item_labels: np.ndarray,
    categories: Sequence[Sequence[str]],
) -> tuple[dict[str, dict[str, float]], dict[str, int]]:
    """Per user segment (by distinct training items): recall and NDCG at every cut-off, and at
    the smallest one hit rate, novelty, category diversity, mean popularity and coverage; per
    item segment: the recall of its relevant items and its share of the lists at every
    cut-off. With the number of users behind each row."""
    ks, k = list(config.ks), min(config.ks)
    users = segments.user_segments(
        np.array([len(e) for e in eval_set.exclude]), light_max=config.light_max
    )
    kept = {*(f"{m}@{c}" for m in ("recall", "ndcg") for c in ks), f"hit_rate@{k}",
            f"novelty@{k}", f"ild_categories@{k}", f"mean_popularity@{k}", f"coverage@{k}",
            "users_evaluated"}  # fmt: skip

    def user_metrics(rows_top: np.ndarray, relevant: list[set[int]]) -> dict[str, float]:
        values = metrics.accuracy_metrics(rows_top, relevant, ks)
        values.update(beyond.beyond_accuracy_metrics(
            rows_top, eval_set.popularity, [k], item_categories=categories))  # fmt: skip
        return {name: value for name, value in values.items() if name in kept}

    table = segments.breakdown(user_metrics, top, eval_set.relevant, users)
    counts = {label: int(values.pop("users_evaluated")) for label, values in table.items()}
    for label, values in segments.item_segment_breakdown(
        top, eval_set.relevant, item_labels, ks
    ).items():
        counts[f"items_{label}"] = int(values.pop("users"))
        table[f"items_{label}"] = values
    return table, counts


def _diversity(points: list[dict], config: EvaluateConfig) -> str:
    """The sweep's diversity metric (categories when the model has no text vectors)."""
    if config.sweep_diversity in points[0]:
        return config.sweep_diversity
    return f"ild_categories@{config.sweep_k}"


def run_evaluation(
    data_dir: str,
    config: EvaluateConfig,
    model: Model | None = None,
    run_dir: str = "",
    progress: bool = True,
) -> EvaluationReport:
    """Evaluates the model and the baselines on the eval split of `data_dir`.

    Args:
      data_dir: An ingested data directory (`recstack ingest`): its catalog, its training
        split (excluded, and the baselines' training data) and its eval split (relevant).
      config: What to measure.
      model: A recommender-call model (`Model(call=...)`, for an exported model or a server);
        None evaluates `run_dir`.
      run_dir: A training run (restored; also supplies embeddings to a recommender-call model).
      progress: Show progress bars while scoring.
    """
    layout = F.DataLayout(data_dir)
    catalog = read_catalog(layout)
    keras_model = None
    if run_dir:
        restored, keras_model = model_from_run(run_dir, catalog.ids)
        model = restored if model is None else dataclasses.replace(
            model, item_embeddings=restored.item_embeddings, text_vectors=restored.text_vectors,
            history_length=restored.history_length,
        )  # fmt: skip
    if model is None:
        raise ValueError("give a training run (run_dir) or a recommender to evaluate")
    eval_set = protocol.build_eval_set(layout, model.history_length, catalog.ids)
    log.info("evaluating %d users over %d items", len(eval_set.users), len(catalog.ids))
    categories = [[c for c in row if c != PAD_CATEGORY] for row in catalog.categories]
    weights = ips.ips_weights(eval_set.popularity, config.ips)
    item_labels = segments.item_segments(eval_set.popularity, config.head_share, config.tail_share)
    k = max(config.ks)
    desc = (lambda name: name) if progress else (lambda name: "")

    lists: dict[str, np.ndarray] = {}
    aucs: dict[str, float] = {}
    for name in config.baselines:
        scorer = build_baseline(name, layout, eval_set, config.baseline)
        lists[name] = lists_from_scorer(scorer, eval_set, k, config.batch_size, desc(name))[0]
        aucs[name] = _auc(scorer, eval_set, config)
    popular_top = protocol.top_k_excluding(
        eval_set.popularity[None, :].astype(np.float64), [np.zeros(0, np.int64)], k
    )[0]
    pool = relevance = None
    if keras_model is not None and model.call is None:
        scorer = protocol.embedding_scorer(
            keras_model.embed_queries(eval_set.queries), model.item_embeddings
        )
        pool, relevance = lists_from_scorer(scorer, eval_set, config.pool_size,
                                            config.batch_size, desc("model"))  # fmt: skip
        lists[MODEL] = pool[:, :k]
        aucs[MODEL] = _auc(scorer, eval_set, config)
    else:
        lists[MODEL] = lists_from_recommender(model.call, eval_set, k, 0.0, config.batch_size,
                                              desc("model"))[0]  # fmt: skip

    table, counted = {}, {}
    for name in [MODEL, *config.baselines]:
        table[name], counted = _system_metrics(
            lists[name], eval_set, config, categories, model.text_vectors, popular_top, weights
        )
        if name in aucs:
            table[name]["auc"] = aucs[name]
    if keras_model is not None:
        from evaluation.ratings import rating_metrics

        table[MODEL].update(rating_metrics(keras_model, layout, model.history_length))

    sweep_k = config.sweep_k

    def sweep_metrics(top: np.ndarray) -> dict[str, float]:
        values = metrics.accuracy_metrics(top, eval_set.relevant, [sweep_k])
        values.update(beyond.beyond_accuracy_metrics(
            top, eval_set.popularity, [sweep_k], item_categories=categories,
            item_embeddings=model.text_vectors,
        ))  # fmt: skip
        return values

    if pool is not None:
        points = lambda_sweep(pool, relevance, model.item_embeddings, sweep_k, config.lambdas,
                              sweep_metrics)  # fmt: skip
    else:
        points = [
            {"mmr_lambda": lam, **sweep_metrics(lists_from_recommender(
                model.call, eval_set, sweep_k, lam, config.batch_size)[0])}
            for lam in config.lambdas
        ]  # fmt: skip
    diversity = _diversity(points, config)
    chosen, curve = choose_lambda(points, config.sweep_accuracy, diversity,
                                  config.max_accuracy_loss)  # fmt: skip
    if pool is not None and config.rerank_variants:
        from evaluation.rerank import ItemSideData
        from evaluation.variants import rerank_variants

        side = ItemSideData(item_ids=list(catalog.ids), embeddings=model.item_embeddings,
                            categories=categories, popularity=eval_set.popularity)  # fmt: skip
        for name, top in rerank_variants(pool, relevance, eval_set, side, config,
                                         chosen).items():  # fmt: skip
            lists[name] = top
            table[name] = _system_metrics(top, eval_set, config, categories,
                                          model.text_vectors, popular_top, weights)[0]  # fmt: skip
    curve = [{"lambda": p["mmr_lambda"], config.sweep_accuracy: p[config.sweep_accuracy],
              diversity: p[diversity]} for p in curve]  # fmt: skip

    segment_tables = {
        name: _segments(top, eval_set, config, item_labels, categories)
        for name, top in lists.items()
    }
    return EvaluationReport(
        meta={
            "data_dir": data_dir, "split": "eval", "model": model.name or run_dir,
            "ks": list(config.ks), "users": len(eval_set.users), "items": len(catalog.ids),
            **counted,
            "segment_users": segment_tables[MODEL][1],
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "config": dataclasses.asdict(config),
        },
        metrics=table,
        lambda_curve=curve,
        lambda_metrics=(config.sweep_accuracy, diversity),
        chosen_lambda=chosen,
        exposure={
            name: beyond.exposure_counts(top[:, : min(config.ks)], len(catalog.ids)).tolist()
            for name, top in lists.items()
        },
        training_popularity=eval_set.popularity.tolist(),
        segments={name: broken[0] for name, broken in segment_tables.items()},
    )  # fmt: skip
