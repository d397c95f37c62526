"""Exports a trained run as the `retrieval`, `ranking` and `recommender` SavedModels, in
TensorFlow Serving layout: `<base_path>/<model>/<version>/`.

All three share one candidate index over every catalog item (ScaNN, or brute force by
`ExportConfig.index`) built from precomputed candidate embeddings, so serving needs the ScaNN
ops but no text ops; their signatures are documented in `trainer.retrieval_serving`,
`trainer.ranking_serving` and `trainer.recommender_serving`. Before anything is written, the
index's recall@k against exact search is measured on sample users, and the export fails
below `ExportConfig.min_recall`.

Every model of one export gets the same version number (one more than the highest existing
version of any of them). Each version is written under a temporary name and renamed when all
of them are complete, so a server polling the base path never sees half a model. Each carries
TF Serving warmup requests (`assets.extra/tf_serving_warmup_requests`) and
`recstack_metadata.json` (index settings, measured recall, source run).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time

import numpy as np
import scann  # noqa: F401  (registers the ScaNN ops the index needs)
import tensorflow as tf

from recstack import features as F
from recstack import fs
from serving.warmup import write_warmup_requests
from trainer import files
from trainer.candidate_index import CandidateIndex
from trainer.export_warmup import UNKNOWN_ITEM, warmup_requests
from trainer.model import RecommenderModel
from trainer.ranking_serving import RankingServing
from trainer.recommender_serving import RecommenderServing
from trainer.retrieval_metrics import top_k_excluding
from trainer.retrieval_serving import RetrievalServing
from trainer.train import restore_model
from trainer.user_tables import UserTables, user_items

log = logging.getLogger(__name__)


#: Catalogs up to this size search every ScaNN partition by default.
SEARCH_ALL_LEAVES_UP_TO = 10_000
#: Share of the partitions larger catalogs search by default (ScaNN's guidance: a few percent
#: of sqrt(n) partitions; benchmarks/bench_serving.py measures recall and speed).
SEARCH_FRACTION = 0.05
#: Index kinds (`ExportConfig.index`).
INDEX_SCANN = "scann"
INDEX_BRUTE_FORCE = "brute_force"
INDEXES = (INDEX_SCANN, INDEX_BRUTE_FORCE)


class RecallTooLowError(ValueError):
    """The index's recall@k against exact search is below `ExportConfig.min_recall`."""


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """What is exported and how the candidate index is built (section `export` of the YAML
    config).

    Attributes:
      models: Models to write, a subset of `features.SERVED_MODELS`.
      k: Items the `retrieval` model returns per user, and the largest `k` a `recommender`
        request may ask for.
      num_candidates: Items the `recommender` retrieves for ranking and re-ranking (at least
        the request's k; plus as many as it excludes).
      exclude_seen: The `recommender` never returns items the user interacted with (in the
        ingested data), besides those the request excludes.
      num_leaves: ScaNN partitions; 0 picks ~sqrt(catalog size).
      num_leaves_to_search: Partitions searched per query; 0 picks all of them for catalogs of
        up to `SEARCH_ALL_LEAVES_UP_TO` items, else `SEARCH_FRACTION` of them, or more when
        the items wanted per query (max(k, num_candidates)) are a large share of the catalog
        (enough partitions to hold ~10 times that many items).
      num_reordering_candidates: Candidates re-scored exactly; 0 picks max(4k, 100).
      dimensions_per_block: Dimensions per block of ScaNN's anisotropic (AH) quantization
        (smaller: more accurate scoring before reordering, larger index).
      recall_sample_queries: Users whose ScaNN results are compared with exact search.
      min_recall: The export fails, writing nothing, when the index's recall@k against exact
        search on the sample users is below this.
      index: `scann` (approximate, needs the ScaNN ops) or `brute_force` (exact dot products
        over every item; core TensorFlow ops only).
      history_splits: Ingested splits whose events fill the served history and seen-item
        tables. Serving wants them all; to evaluate a served model on a split without leaking
        it, leave that split out (`recstack evaluate` checks).
    """

    models: tuple[str, ...] = F.SERVED_MODELS
    k: int = 100
    num_candidates: int = 200
    exclude_seen: bool = True
    num_leaves: int = 0
    num_leaves_to_search: int = 0
    num_reordering_candidates: int = 0
    dimensions_per_block: int = 2
    recall_sample_queries: int = 200
    min_recall: float = 0.95
    index: str = INDEX_SCANN
    history_splits: tuple[str, ...] = ("train", "eval", "test")

    def __post_init__(self) -> None:
        if self.k < 1 or self.dimensions_per_block < 1 or self.num_candidates < 1:
            raise ValueError(
                f"k={self.k}, num_candidates={self.num_candidates} and dimensions_per_block="
                f"{self.dimensions_per_block} must be at least 1"
            )
        object.__setattr__(self, "models", tuple(self.models))
        unknown = sorted(set(self.models) - set(F.SERVED_MODELS))
        if unknown or not self.models:
            raise ValueError(
                f"models={list(self.models)} must be a non-empty subset of "
                f"{list(F.SERVED_MODELS)} (unknown: {unknown})"
            )
        for name in ("num_leaves", "num_leaves_to_search", "num_reordering_candidates"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0 (0 = automatic)")
        if not 0.0 <= self.min_recall <= 1.0:
            raise ValueError(f"min_recall={self.min_recall} must be in [0, 1]")
        if self.index not in INDEXES:
            raise ValueError(f"index={self.index!r} is not one of {list(INDEXES)}")

    def resolved(self, num_items: int) -> dict[str, int]:
        """ScaNN arguments with automatic values filled in for a catalog of `num_items`."""
        if self.k > num_items:
            raise ValueError(
                f"k={self.k} exceeds the {num_items} catalog items; lower export.k or index "
                "more items"
            )
        leaves = self.num_leaves or max(1, int(math.sqrt(num_items)))
        leaves = min(leaves, num_items)
        if num_items <= SEARCH_ALL_LEAVES_UP_TO:
            # Scoring every quantized item is cheap at this size; partitions only cost recall.
            to_search = leaves
        else:
            # A partition holds ~num_items/leaves items; search enough to see ~10x the items a
            # query wants. The recall gate checks the result.
            wanted = max(self.k, self.num_candidates)
            to_search = max(math.ceil(SEARCH_FRACTION * leaves),
                            math.ceil(10 * wanted * leaves / num_items))  # fmt: skip
        return {
            "k": self.k,
            "num_leaves": leaves,
            "num_leaves_to_search": self.num_leaves_to_search or min(leaves, to_search),
            "num_reordering_candidates": self.num_reordering_candidates or max(4 * self.k, 100),
            "dimensions_per_block": self.dimensions_per_block,
        }


def _index_recall(
    index: CandidateIndex, queries: np.ndarray, embeddings: np.ndarray, k: int
) -> float:
    """Share of the exact top-k (brute force over the embeddings) that `index` returns for
    the `[n, d]` query embeddings."""
    if not len(queries):
        return 1.0
    exact = top_k_excluding(queries @ embeddings.T, [np.array([], np.int64)] * len(queries), k)
    _, approx = index.search(tf.constant(queries), tf.constant(k))
    hits = sum(len(set(want.tolist()) & set(got.tolist()))
               for want, got in zip(exact, approx.numpy(), strict=True))  # fmt: skip
    return hits / (len(queries) * k)


def _modules(
    model: RecommenderModel,
    items: dict[str, list[str]],
    users: UserTables,
    index: CandidateIndex,
    embeddings: np.ndarray,
    config: ExportConfig,
) -> dict[str, tuple[tf.Module, object]]:
    """(module, its serving function) of each model in `config.models`; `users` are the
    tables built from `items` without seen items."""
    catalog = model.catalog
    built: dict[str, tuple[tf.Module, object]] = {}
    if F.MODEL_RETRIEVAL in config.models:
        module = RetrievalServing(model.query_model, users, index, config.k)
        built[F.MODEL_RETRIEVAL] = (module, module.serve)
    if F.MODEL_RANKING in config.models:
        unknown = model.embed_items(np.array([UNKNOWN_ITEM], dtype=object))[0]
        module = RankingServing(model.query_model, users, catalog.ids, catalog.titles,
                                embeddings, unknown, model.ranker)  # fmt: skip
        built[F.MODEL_RANKING] = (module, module.serve)
    if F.MODEL_RECOMMENDER in config.models:
        if config.exclude_seen:
            users = UserTables(items, users.history_length, keep_seen=True)
        module = RecommenderServing(
            model.query_model, users, index, model.ranker, max_k=config.k,
            num_candidates=config.num_candidates, exclude_seen=config.exclude_seen,
        )  # fmt: skip
        built[F.MODEL_RECOMMENDER] = (module, module.serve)
    return built


def export_models(run_dir: str, base_path: str, config: ExportConfig) -> dict[str, str]:
    """Builds the candidate index for the run's model and writes the next version of each of
    `config.models`.

    Args:
      run_dir: A finished `recstack train` run directory.
      base_path: Model base path; model `m` goes to `<base_path>/<m>/<version>/`.
      config: What to export and the index settings.

    Returns:
      Path of each written version directory, by model name.

    Raises:
      RecallTooLowError: the index misses too much of the exact top-k (`config.min_recall`);
        nothing is written.
    """
    model, train_config, data_dir = restore_model(run_dir)
    item_ids = model.catalog.ids
    params = config.resolved(len(item_ids))
    embeddings = model.embed_items(item_ids)
    catalog = {"item_ids": item_ids, "titles": model.catalog.titles}
    if config.index == INDEX_SCANN:
        log.info("indexing %d catalog items with ScaNN %s", len(item_ids), params)
        index = CandidateIndex(embeddings, INDEX_SCANN, **catalog,
                               **{n: v for n, v in params.items() if n != "k"})  # fmt: skip
    else:
        log.info("indexing %d catalog items for brute-force search", len(item_ids))
        params = {"k": params["k"]}
        index = CandidateIndex(embeddings, INDEX_BRUTE_FORCE, **catalog)
    items = user_items(F.DataLayout(data_dir), tuple(config.history_splits))
    tables = UserTables(items, train_config.query.history_length)
    users = model.query_model.vocabulary
    sample = tables.query_features(tf.constant(users[: config.recall_sample_queries]))
    recall = _index_recall(index, model.query_model(sample).numpy(), embeddings, params["k"])
    log.info("index recall@%d vs exact search on %d users: %.4f", params["k"],
             len(sample[F.USER_ID]), recall)  # fmt: skip
    if recall < config.min_recall:
        raise RecallTooLowError(
            f"the {config.index} index finds {recall:.4f} of the exact top-{params['k']} on "
            f"{len(sample[F.USER_ID])} users, below export.min_recall={config.min_recall}; "
            "nothing was written. Raise export.num_leaves_to_search or "
            "export.num_reordering_candidates, lower export.dimensions_per_block, or use "
            "export.index: brute_force"
        )
    version = max(fs.next_version(os.path.join(base_path, name)) for name in config.models)
    metadata = {
        "version": version,
        "run_dir": run_dir,
        "data_dir": data_dir,
        "num_items": len(item_ids),
        "index": config.index,
        "index_params": params,
        "index_recall_at_k": recall,
        "min_recall": config.min_recall,
        "max_k": config.k,
        "num_candidates": config.num_candidates,
        "exclude_seen": config.exclude_seen,
        "history_splits": list(config.history_splits),
        "exported_at": int(time.time()),
    }
    modules = _modules(model, items, tables, index, embeddings, config)
    staged = {}
    for name, (module, serve) in modules.items():
        staged[name] = _stage(base_path, name, version, module, serve)
        requests = warmup_requests(name, users, item_ids.tolist(), config.k)
        write_warmup_requests(staged[name], requests)
        files.write_json(os.path.join(staged[name], F.EXPORT_METADATA_FILE),
                         {**metadata, "model": name, "warmup_requests": len(requests)})  # fmt: skip
    written = {}
    for name, staging in staged.items():
        written[name] = os.path.join(base_path, name, str(version))
        tf.io.gfile.rename(staging, written[name])
        log.info("exported %s", written[name])
    return written


def _stage(
    base_path: str,
    name: str,
    version: int,
    module: tf.Module,
    serve: tf.types.experimental.PolymorphicFunction,
) -> str:
    """Saves `module` under a temporary directory beside its final version directory."""
    staging = os.path.join(base_path, name, f".tmp-{version}-{os.getpid()}-{int(time.time())}")
    tf.saved_model.save(
        module,
        staging,
        signatures={F.SERVING_SIGNATURE: serve},
        options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]),
    )
    return staging
