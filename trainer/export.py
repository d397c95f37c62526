"""Exports a trained run as a `retrieval` SavedModel in TensorFlow Serving layout.

`<base_path>/retrieval/<version>/` holds a SavedModel whose `serving_default` signature takes
`user_id` (string `[batch]`) and returns `item_ids`, `titles` (string `[batch, k]`) and `scores`
(float32 `[batch, k]`) from a ScaNN index over every catalog item. The query tower's other
inputs are filled in the graph: the user's most recent items from the ingested interactions
(all splits; none for an unknown user) and the hour and weekday of the request (UTC). The
version directory is written under a temporary name and renamed when complete, so a server
polling the base path never sees half a model. Each version carries TF Serving warmup requests
(`assets.extra/tf_serving_warmup_requests`, `serving.warmup`) that servers replay before
offering it.
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
import tensorflow_recommenders as tfrs

from recstack import features as F
from serving.warmup import write_warmup_requests
from trainer import data, files
from trainer.history import dense_history
from trainer.retrieval_metrics import top_k_excluding
from trainer.train import restore_model

log = logging.getLogger(__name__)


#: Catalogs up to this size search every ScaNN partition by default.
SEARCH_ALL_LEAVES_UP_TO = 10_000
#: Index kinds (`ExportConfig.index`).
INDEX_SCANN = "scann"
INDEX_BRUTE_FORCE = "brute_force"
INDEXES = (INDEX_SCANN, INDEX_BRUTE_FORCE)


class RecallTooLowError(ValueError):
    """The index's recall@k against exact search is below `ExportConfig.min_recall`."""


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """How the retrieval index is built (section `export` of the YAML config).

    Attributes:
      k: Items returned per query by the signature.
      num_leaves: ScaNN partitions; 0 picks ~sqrt(catalog size).
      num_leaves_to_search: Partitions searched per query; 0 picks all of them for catalogs of
        up to `SEARCH_ALL_LEAVES_UP_TO` items, else a quarter of num_leaves, or more when k is a
        large share of the catalog (enough partitions to hold ~10*k items).
      num_reordering_candidates: Candidates re-scored exactly; 0 picks max(4k, 100).
      dimensions_per_block: Dimensions per block of ScaNN's anisotropic (AH) quantization
        (smaller: more accurate scoring before reordering, larger index).
      recall_sample_queries: Users whose ScaNN results are compared with exact search.
      min_recall: The export fails, writing nothing, when the index's recall@k against exact
        search on the sample users is below this.
      index: `scann` (approximate, needs the ScaNN ops) or `brute_force` (exact dot products
        over every item; core TensorFlow ops only).
    """

    k: int = 100
    num_leaves: int = 0
    num_leaves_to_search: int = 0
    num_reordering_candidates: int = 0
    dimensions_per_block: int = 2
    recall_sample_queries: int = 200
    min_recall: float = 0.95
    index: str = INDEX_SCANN

    def __post_init__(self) -> None:
        if self.k < 1 or self.dimensions_per_block < 1:
            raise ValueError(
                f"k={self.k} and dimensions_per_block={self.dimensions_per_block} must be at "
                "least 1"
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
            # A partition holds ~num_items/leaves items; search enough to see ~10*k candidates.
            to_search = max(1, leaves // 4, math.ceil(10 * self.k * leaves / num_items))
        return {
            "k": self.k,
            "num_leaves": leaves,
            "num_leaves_to_search": self.num_leaves_to_search or min(leaves, to_search),
            "num_reordering_candidates": self.num_reordering_candidates or max(4 * self.k, 100),
            "dimensions_per_block": self.dimensions_per_block,
        }


class RetrievalServing(tf.Module):
    """The exported module: a ScaNN index over the catalog, each user's recent items, and an
    item-id -> title table."""

    def __init__(
        self,
        index: tfrs.layers.factorized_top_k.ScaNN,
        titles: dict[str, str],
        histories: dict[str, list[str]],
        history_length: int,
    ) -> None:
        super().__init__()
        self.index = index
        self.history_length = max(history_length, 1)
        self.titles = _string_table(list(titles), list(titles.values()))
        # Each user's history as one separator-joined string; split back in the graph.
        self.histories = _string_table(
            list(histories), [HISTORY_SEPARATOR.join(h) for h in histories.values()]
        )

    def query_features(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        """`[batch]` user ids -> the query tower's features, looked up and timed now."""
        joined = self.histories.lookup(user_id)
        history = tf.strings.split(joined, HISTORY_SEPARATOR)
        history = tf.ragged.boolean_mask(history, tf.not_equal(history, ""))
        seconds = tf.cast(tf.timestamp(), tf.int64)
        batch = tf.shape(user_id, out_type=tf.int64)[0]
        return {
            F.USER_ID: user_id,
            F.HISTORY_ITEM_IDS: dense_history(history, self.history_length),
            F.HOUR: tf.fill([batch], seconds // 3600 % 24),
            F.WEEKDAY: tf.fill([batch], (seconds // 86400 + F.EPOCH_WEEKDAY) % 7),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=F.INPUT_USER_ID)])
    def serve(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        """Top-k items for each user id: `[batch]` -> `{item_ids, titles, scores}: [batch, k]`."""
        scores, item_ids = self.index(self.query_features(user_id))
        return {
            F.OUTPUT_ITEM_IDS: item_ids,
            F.OUTPUT_TITLES: self.titles.lookup(item_ids),
            F.OUTPUT_SCORES: scores,
        }


#: Joins a user's history items in the exported table (a control character, never in ids).
HISTORY_SEPARATOR = "\x1f"


def _string_table(keys: list[str], values: list[str]) -> tf.lookup.StaticHashTable:
    if not keys:  # A table needs one entry; this one is never asked for.
        keys, values = [HISTORY_SEPARATOR], [""]
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)),
        default_value="",
    )


def recent_histories(layout: F.DataLayout, length: int) -> dict[str, list[str]]:
    """Each user's `length` most recent items (oldest first) over all ingested splits."""
    events: dict[str, list[tuple[int, str]]] = {}
    for pattern in (layout.train_pattern, layout.eval_pattern, layout.test_pattern):
        if not tf.io.gfile.glob(pattern):
            continue
        columns = data.read_columns(pattern, (F.USER_ID, F.ITEM_ID, F.TIMESTAMP))
        for user, item, timestamp in zip(
            columns[F.USER_ID], columns[F.ITEM_ID], columns[F.TIMESTAMP], strict=True
        ):
            events.setdefault(user, []).append((int(timestamp), item))
    return {user: [item for _, item in sorted(pairs)[-length:]] for user, pairs in events.items()}


#: User id of the warmup request for a user the model has never seen.
WARMUP_UNKNOWN_USER = "warmup-unknown-user"


def _warmup_requests(users: list[str]) -> list:
    """Predict requests replayed before a version is offered: batches of 1 and 8 known users
    and one unknown user, so lookups, history splitting and ScaNN run for each batch shape."""
    from tensorflow_serving.apis import predict_pb2

    batches = [users[:1], users[:8], [WARMUP_UNKNOWN_USER]]
    requests = []
    for batch in batches:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = F.MODEL_RETRIEVAL
        request.model_spec.signature_name = F.SERVING_SIGNATURE
        request.inputs[F.INPUT_USER_ID].CopyFrom(
            tf.make_tensor_proto(np.array(batch, dtype=object))
        )
        requests.append(request)
    return requests


def next_version(model_dir: str) -> int:
    """1 + the highest numeric version under `model_dir` (1 when there is none)."""
    if not tf.io.gfile.isdir(model_dir):
        return 1
    versions = [int(name.strip("/")) for name in tf.io.gfile.listdir(model_dir)
                if name.strip("/").isdigit()]  # fmt: skip
    return max(versions, default=0) + 1


def _index_recall(
    index: tfrs.layers.factorized_top_k.TopK,
    query_embeddings: np.ndarray,
    queries: dict[str, tf.Tensor],
    item_embeddings: np.ndarray,
    item_ids: np.ndarray,
    k: int,
) -> float:
    """Share of the exact top-k (brute force over the embeddings) that `index` returns, over
    the sample queries."""
    n = len(query_embeddings)
    exact = top_k_excluding(query_embeddings @ item_embeddings.T,
                            [np.array([], np.int64)] * n, k)  # fmt: skip
    _, approx = index(queries)
    approx = approx.numpy().astype(str)
    hits = sum(len(set(item_ids[row].tolist()) & set(got.tolist()))
               for row, got in zip(exact, approx, strict=True))  # fmt: skip
    return hits / (n * k) if n else 1.0


def export_retrieval(run_dir: str, base_path: str, config: ExportConfig) -> str:
    """Builds the ScaNN index for the run's model and writes the next version.

    Args:
      run_dir: A finished `recstack train` run directory.
      base_path: Model base path; the version goes to `<base_path>/retrieval/<version>/`.
      config: Index settings.

    Returns:
      Path of the written version directory.

    Raises:
      RecallTooLowError: the index misses too much of the exact top-k (`config.min_recall`).
    """
    model, train_config, data_dir = restore_model(run_dir)
    item_ids = model.catalog.ids
    titles = dict(zip(item_ids.tolist(), model.catalog.titles.tolist(), strict=True))
    params = config.resolved(len(item_ids))
    item_embeddings = model.embed_items(item_ids)
    if config.index == INDEX_SCANN:
        log.info("indexing %d catalog items with ScaNN %s", len(item_ids), params)
        index = tfrs.layers.factorized_top_k.ScaNN(model.query_model, **params)
    else:
        log.info("indexing %d catalog items for brute-force search", len(item_ids))
        params = {"k": params["k"]}
        index = tfrs.layers.factorized_top_k.BruteForce(model.query_model, k=params["k"])
    index.index(
        candidates=tf.constant(item_embeddings), identifiers=tf.constant(item_ids.astype(str))
    )
    histories = recent_histories(F.DataLayout(data_dir), train_config.query.history_length)
    module = RetrievalServing(index, titles, histories, train_config.query.history_length)
    users = tf.constant(model.query_model.vocabulary[: config.recall_sample_queries])
    queries = module.query_features(users)
    recall = _index_recall(index, model.query_model(queries).numpy(), queries, item_embeddings,
                           item_ids, params["k"])  # fmt: skip
    log.info("index recall@%d vs exact search on %d users: %.4f", params["k"], len(users), recall)
    if recall < config.min_recall:
        raise RecallTooLowError(
            f"the {config.index} index finds {recall:.4f} of the exact top-{params['k']} on "
            f"{len(users)} users, below export.min_recall={config.min_recall}; nothing was "
            "written. Raise export.num_leaves_to_search or export.num_reordering_candidates, "
            "lower export.dimensions_per_block, or use export.index: brute_force"
        )
    model_dir = os.path.join(base_path, F.MODEL_RETRIEVAL)
    version = next_version(model_dir)
    final = os.path.join(model_dir, str(version))
    staging = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}-{int(time.time())}")
    tf.saved_model.save(
        module,
        staging,
        signatures={F.SERVING_SIGNATURE: module.serve},
        options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]),
    )
    warmup_requests = _warmup_requests(model.query_model.vocabulary)
    warmup = write_warmup_requests(staging, warmup_requests)
    metadata = {
        "warmup_requests": len(warmup_requests),
        "model": F.MODEL_RETRIEVAL,
        "version": version,
        "run_dir": run_dir,
        "data_dir": data_dir,
        "num_items": len(item_ids),
        "index": config.index,
        "scann": params,
        "scann_recall_at_k": recall,
        "min_recall": config.min_recall,
        "exported_at": int(time.time()),
    }
    files.write_json(os.path.join(staging, F.EXPORT_METADATA_FILE), metadata)
    log.info("wrote %d warmup requests to %s", metadata["warmup_requests"], warmup)
    tf.io.gfile.rename(staging, final)
    log.info("exported %s", final)
    return final
