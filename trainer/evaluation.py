"""Full-corpus retrieval evaluation on the eval split, with a popularity baseline.

Protocol: every catalog item is a candidate; each user's training items are excluded from their
ranking; the relevant set is the user's distinct eval items that were not in their training
items. Users with no such item are skipped. Each user's query is the features of their first
eval event (history strictly before it, its hour and weekday), as at serving time.

Metrics (`metric_names`): `recall@k` and `ndcg@k` for every cut-off, and `mrr` within the
largest cut-off.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from recstack import features as F
from trainer import data
from trainer.retrieval_metrics import mean_reciprocal_rank, ndcg_at_k, recall_at_k, top_k_excluding

MRR = "mrr"


def metric_names(ks: Sequence[int]) -> list[str]:
    """Names of the retrieval metrics for cut-offs `ks`, in report order."""
    return [*(f"recall@{k}" for k in ks), *(f"ndcg@{k}" for k in ks), MRR]


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """What evaluation needs, in corpus indices.

    Attributes:
      corpus_ids: `[num_items]` catalog item ids (the candidates).
      popularity: `[num_items]` training interactions per catalog item.
      users: `[num_users]` ids of the evaluated users.
      exclude: Per user, int array of their training items' corpus indices.
      relevant: Per user, set of relevant corpus indices.
      queries: Query features of each user (`F.USER_ID` `[num_users]`, `F.HISTORY_ITEM_IDS`
        `[num_users, history_length]` padded with "", `F.HOUR`, `F.WEEKDAY` `[num_users]`),
        taken from the user's first eval event.
    """

    corpus_ids: np.ndarray
    popularity: np.ndarray
    users: np.ndarray
    exclude: list[np.ndarray]
    relevant: list[set[int]]
    queries: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def build_eval_set(
    layout: F.DataLayout, history_length: int = 20, corpus_ids: np.ndarray | None = None
) -> EvalSet:
    """Reads the train/eval splits (and, unless `corpus_ids` gives them, the item corpus's ids)
    of an ingested data directory."""
    if corpus_ids is None:
        corpus_ids = data.read_columns(layout.items_pattern, (F.ITEM_ID,), F.ITEM_FEATURES)[
            F.ITEM_ID
        ]
    index = {item: i for i, item in enumerate(corpus_ids)}
    train = data.read_columns(layout.train_pattern, (F.USER_ID, F.ITEM_ID))
    popularity = np.zeros(len(corpus_ids), dtype=np.int64)
    seen: dict[str, set[int]] = defaultdict(set)
    for user, item in zip(train[F.USER_ID], train[F.ITEM_ID], strict=True):
        if item in index:
            popularity[index[item]] += 1
            seen[user].add(index[item])
    wanted: dict[str, set[int]] = defaultdict(set)
    first: dict[str, tuple] = {}
    length = max(history_length, 1)
    for batch in data.make_training_dataset(layout.eval_pattern, 4096, length):
        columns = [batch[n].numpy() for n in (F.USER_ID, F.ITEM_ID, F.TIMESTAMP,
                                               F.HISTORY_ITEM_IDS, F.HOUR, F.WEEKDAY)]  # fmt: skip
        for user, item, timestamp, history, hour, weekday in zip(*columns, strict=True):
            user, item = user.decode(), item.decode()
            if item in index and index[item] not in seen[user]:
                wanted[user].add(index[item])
            if user not in first or timestamp < first[user][0]:
                first[user] = (timestamp, [h.decode() for h in history], hour, weekday)
    users = sorted(wanted)
    queries = {
        F.USER_ID: np.array(users, dtype=object),
        F.HISTORY_ITEM_IDS: np.array([first[u][1] for u in users], dtype=object).reshape(
            len(users), length
        ),
        F.HOUR: np.array([first[u][2] for u in users], dtype=np.int64),
        F.WEEKDAY: np.array([first[u][3] for u in users], dtype=np.int64),
    }
    return EvalSet(
        corpus_ids=corpus_ids,
        popularity=popularity,
        users=np.array(users, dtype=object),
        exclude=[np.fromiter(seen[u], dtype=np.int64) for u in users],
        relevant=[wanted[u] for u in users],
        queries=queries,
    )


def evaluate(
    score_batch: Callable[[np.ndarray], np.ndarray],
    eval_set: EvalSet,
    ks: Sequence[int],
    batch_size: int = 1024,
) -> dict[str, float]:
    """Retrieval metrics of a scorer over all evaluated users.

    Args:
      score_batch: `[b]` indices into `eval_set.users` -> `[b, num_items]` scores over
        `eval_set.corpus_ids`.
      eval_set: Users, exclusions and relevant items.
      ks: Cut-offs.
      batch_size: Users scored at once.

    Returns:
      `{name: value}` for `metric_names(ks)`.
    """
    return metrics_of(top_lists(score_batch, eval_set, max(ks), batch_size), eval_set, ks)


def top_lists(
    score_batch: Callable[[np.ndarray], np.ndarray],
    eval_set: EvalSet,
    k: int,
    batch_size: int = 1024,
) -> np.ndarray:
    """`[num_users, min(k, num_items)]` corpus indices of each evaluated user's best-scored
    items, never their training items (-1 where too few items are left)."""
    k = min(k, len(eval_set.corpus_ids))
    tops = []
    for start in range(0, len(eval_set.users), batch_size):
        rows = np.arange(start, min(start + batch_size, len(eval_set.users)))
        tops.append(top_k_excluding(score_batch(rows), [eval_set.exclude[r] for r in rows], k))
    return np.concatenate(tops) if tops else np.zeros((0, k), np.int64)


def metrics_of(top: np.ndarray, eval_set: EvalSet, ks: Sequence[int]) -> dict[str, float]:
    """`metric_names(ks)` of `top_lists` output (0 for every metric when there are no users)."""
    if not len(top):
        return dict.fromkeys(metric_names(ks), 0.0)
    if top.shape[1] < max(ks):  # A corpus smaller than the largest cut-off.
        top = np.pad(top, ((0, 0), (0, max(ks) - top.shape[1])), constant_values=-1)
    recall = recall_at_k(top, eval_set.relevant, ks)
    ndcg = ndcg_at_k(top, eval_set.relevant, ks)
    return {
        **{f"recall@{k}": recall[k] for k in ks},
        **{f"ndcg@{k}": ndcg[k] for k in ks},
        MRR: mean_reciprocal_rank(top, eval_set.relevant),
    }


def popularity_scorer(eval_set: EvalSet) -> Callable[[np.ndarray], np.ndarray]:
    """Scores every user with the items' training counts (the popularity baseline)."""
    scores = eval_set.popularity.astype(np.float64)
    return lambda rows: np.broadcast_to(scores, (len(rows), len(scores)))


def embedding_scorer(
    query_embeddings: np.ndarray, item_embeddings: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Dot-product scorer: `query_embeddings[rows] @ item_embeddings[num_items, d].T`, the
    query embeddings being `[num_users, d]` in `EvalSet.users` order."""
    return lambda rows: query_embeddings[rows] @ item_embeddings.T
