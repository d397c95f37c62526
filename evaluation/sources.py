"""Where the evaluated recommendation lists come from.

- A training run, in process: the restored model scores the whole catalog exactly
  (`lists_from_scorer`, like the baselines).
- An exported `recommender` SavedModel, in process (`saved_model_call`), or the same model
  behind a running server, over gRPC (`server_call`): what users get (ScaNN retrieval, ranking,
  exclusions, MMR), asked through the `recommender` signature (`lists_from_recommender`).

Lists are `top`: int64 `[num_users, k]` corpus indices, best first, -1 where a list is short,
with `scores`: float32 `[num_users, k]` (0 where `top` is -1).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence

import numpy as np
from tqdm import tqdm

from recstack import features as F
from recstack import fs
from trainer.evaluation import EvalSet
from trainer.retrieval_metrics import top_k_excluding

#: `(user_ids, k, mmr_lambda, exclude) -> (item_ids [b, k] str, scores [b, k])`.
RecommenderCall = Callable[
    [Sequence[str], int, float, Sequence[Sequence[str]]], tuple[np.ndarray, np.ndarray]
]


class LeakError(ValueError):
    """The served model's user tables hold the split being evaluated."""


def lists_from_scorer(
    score_batch: Callable[[np.ndarray], np.ndarray],
    eval_set: EvalSet,
    k: int,
    batch_size: int = 1024,
    desc: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Top `k` of a full-catalog scorer (`rows [b] -> scores [b, N]`) per evaluated user,
    never returning their training items."""
    k = min(k, len(eval_set.corpus_ids))
    tops, scores = [], []
    starts = range(0, len(eval_set.users), batch_size)
    for start in tqdm(starts, desc=desc or "scoring", unit="batch", disable=not desc):
        rows = np.arange(start, min(start + batch_size, len(eval_set.users)))
        batch = np.asarray(score_batch(rows), dtype=np.float64)
        top = top_k_excluding(batch, [eval_set.exclude[r] for r in rows], k)
        tops.append(top)
        picked = np.take_along_axis(batch, np.maximum(top, 0), axis=1)
        scores.append(np.where(top >= 0, picked, 0.0).astype(np.float32))
    if not tops:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(tops), np.concatenate(scores)


def lists_from_recommender(
    call: RecommenderCall,
    eval_set: EvalSet,
    k: int,
    mmr_lambda: float = 0.0,
    batch_size: int = 256,
    desc: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Asks a `recommender` for every evaluated user's top `k`, excluding their training
    items, and maps the returned ids to corpus indices (ids outside the corpus become -1)."""
    row_of = {item: i for i, item in enumerate(eval_set.corpus_ids)}
    tops, scores = [], []
    starts = range(0, len(eval_set.users), batch_size)
    for start in tqdm(starts, desc=desc or "asking", unit="batch", disable=not desc):
        rows = range(start, min(start + batch_size, len(eval_set.users)))
        users = [str(eval_set.users[r]) for r in rows]
        exclude = [[str(i) for i in eval_set.corpus_ids[eval_set.exclude[r]]] for r in rows]
        ids, values = call(users, k, mmr_lambda, exclude)
        top = np.full((len(users), k), -1, np.int64)
        score = np.zeros((len(users), k), np.float32)
        for i in range(len(users)):
            for j in range(min(k, ids.shape[1])):
                item = ids[i, j].decode() if isinstance(ids[i, j], bytes) else str(ids[i, j])
                if item in row_of:
                    top[i, j], score[i, j] = row_of[item], values[i, j]
        tops.append(top)
        scores.append(score)
    if not tops:
        return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32)
    return np.concatenate(tops), np.concatenate(scores)


def _padded(exclude: Sequence[Sequence[str]]) -> np.ndarray:
    width = max(1, max((len(e) for e in exclude), default=0))
    return np.array([list(e) + [""] * (width - len(e)) for e in exclude], dtype=object)


def saved_model_call(version_dir: str) -> RecommenderCall:
    """Calls an exported `recommender` version in this process."""
    import scann  # noqa: F401  (registers the Scann* ops the index needs)
    import tensorflow as tf

    serve = tf.saved_model.load(version_dir).signatures[F.SERVING_SIGNATURE]

    def call(users, k, mmr_lambda, exclude):
        b = len(users)
        out = serve(**{
            F.INPUT_USER_ID: tf.constant(list(users)),
            F.INPUT_K: tf.fill([b], tf.constant(k, tf.int32)),
            F.INPUT_MMR_LAMBDA: tf.fill([b], tf.constant(mmr_lambda, tf.float32)),
            F.INPUT_EXCLUDE_ITEM_IDS: tf.constant(_padded(exclude).astype(str)),
        })  # fmt: skip
        return out[F.OUTPUT_ITEM_IDS].numpy()[:, :k], out[F.OUTPUT_SCORES].numpy()[:, :k]

    return call


def server_call(client, model: str = F.MODEL_RECOMMENDER) -> RecommenderCall:
    """Calls the `recommender` behind a running server through `serving.client.ServingClient`
    (its raw Predict outputs, so padding is kept as in process)."""
    from serving.client_inputs import recommender_inputs

    def call(users, k, mmr_lambda, exclude):
        inputs = {F.INPUT_USER_ID: np.array(list(users), dtype=object)}
        inputs.update(recommender_inputs(len(users), k, mmr_lambda, exclude))
        out = client.predict(model, inputs)
        return out[F.OUTPUT_ITEM_IDS][:, :k], out[F.OUTPUT_SCORES][:, :k]

    return call


def newest_version(model_base: str) -> str:
    """`model_base` itself when it is a version directory, else its newest numeric version."""
    if os.path.exists(os.path.join(model_base, "saved_model.pb")):
        return model_base
    versions = fs.versions(model_base)
    if not versions:
        raise FileNotFoundError(f"{model_base} has no saved_model.pb and no version directory")
    return os.path.join(model_base, str(versions[-1]))


def check_history_splits(version_dir: str, split: str) -> None:
    """Refuses a served model whose history and seen-item tables were built with `split`.

    Raises:
      LeakError: the export's `history_splits` include `split`.
    """
    path = os.path.join(version_dir, F.EXPORT_METADATA_FILE)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        splits = json.load(f).get("history_splits", ["train", "eval", "test"])
    if split in splits:
        raise LeakError(
            f"{version_dir} was exported with the {split} split in its user tables "
            f"(export.history_splits={splits}): its history and seen items already hold the "
            f"answers. Export for evaluation with --set export.history_splits=[train] (or "
            f"without '{split}'), or evaluate the training run with --run-dir"
        )
