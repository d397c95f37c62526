"""Full-corpus retrieval evaluation on the eval split, with a popularity baseline.

Protocol: every catalog item is a candidate; each user's training items are excluded from their
ranking; the relevant set is the user's distinct eval items that were not in their training
items. Users with no such item are skipped.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from recstack import features as F
from trainer import data
from trainer.retrieval_metrics import recall_at_k, top_k_excluding


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """What evaluation needs, in corpus indices.

    Attributes:
      corpus_ids: `[num_items]` catalog item ids (the candidates).
      popularity: `[num_items]` training interactions per catalog item.
      users: `[num_users]` ids of the evaluated users.
      exclude: Per user, int array of their training items' corpus indices.
      relevant: Per user, set of relevant corpus indices.
    """

    corpus_ids: np.ndarray
    popularity: np.ndarray
    users: np.ndarray
    exclude: list[np.ndarray]
    relevant: list[set[int]]


def build_eval_set(layout: F.DataLayout) -> EvalSet:
    """Reads the item corpus and the train/eval splits of an ingested data directory."""
    corpus_ids = data.read_columns(layout.items_pattern, (F.ITEM_ID,), F.ITEM_FEATURES)[F.ITEM_ID]
    index = {item: i for i, item in enumerate(corpus_ids)}
    train = data.read_columns(layout.train_pattern, (F.USER_ID, F.ITEM_ID))
    evaluation = data.read_columns(layout.eval_pattern, (F.USER_ID, F.ITEM_ID))

    popularity = np.zeros(len(corpus_ids), dtype=np.int64)
    seen: dict[str, set[int]] = defaultdict(set)
    for user, item in zip(train[F.USER_ID], train[F.ITEM_ID], strict=True):
        if item in index:
            popularity[index[item]] += 1
            seen[user].add(index[item])
    wanted: dict[str, set[int]] = defaultdict(set)
    for user, item in zip(evaluation[F.USER_ID], evaluation[F.ITEM_ID], strict=True):
        if item in index and index[item] not in seen[user]:
            wanted[user].add(index[item])
    users = sorted(wanted)
    return EvalSet(
        corpus_ids=corpus_ids,
        popularity=popularity,
        users=np.array(users, dtype=object),
        exclude=[np.fromiter(seen[u], dtype=np.int64) for u in users],
        relevant=[wanted[u] for u in users],
    )


def evaluate(
    score_batch: Callable[[np.ndarray], np.ndarray],
    eval_set: EvalSet,
    ks: Sequence[int],
    batch_size: int = 1024,
) -> dict[int, float]:
    """Recall@k of a scorer over all evaluated users.

    Args:
      score_batch: `[b]` user ids -> `[b, num_items]` scores over `eval_set.corpus_ids`.
      eval_set: Users, exclusions and relevant items.
      ks: Cut-offs.
      batch_size: Users scored at once.
    """
    k = min(max(ks), len(eval_set.corpus_ids))
    tops = []
    for start in range(0, len(eval_set.users), batch_size):
        users = eval_set.users[start : start + batch_size]
        tops.append(
            top_k_excluding(score_batch(users), eval_set.exclude[start : start + batch_size], k)
        )
    if not tops:
        return dict.fromkeys(ks, 0.0)
    return recall_at_k(np.concatenate(tops), eval_set.relevant, ks)


def popularity_scorer(eval_set: EvalSet) -> Callable[[np.ndarray], np.ndarray]:
    """Scores every user with the items' training counts (the popularity baseline)."""
    scores = eval_set.popularity.astype(np.float64)
    return lambda users: np.broadcast_to(scores, (len(users), len(scores)))


def embedding_scorer(
    embed_users: Callable[[np.ndarray], np.ndarray], item_embeddings: np.ndarray
) -> Callable[[np.ndarray], np.ndarray]:
    """Dot-product scorer: `embed_users([b]) @ item_embeddings[num_items, d].T`."""
    return lambda users: embed_users(users) @ item_embeddings.T
