"""Baselines that every metric of `recstack evaluate` is reported against.

Each baseline is a scorer over an `EvalSet` (`trainer.evaluation`): `[b]` indices into
`eval_set.users` -> `[b, num_items]` scores over `eval_set.corpus_ids`, fitted on the training
split of the same data directory, so `trainer.evaluation.evaluate` ranks it with the same
protocol (training items excluded, full corpus) as the model.

- `popularity`: training interaction counts (`trainer.evaluation.popularity_scorer`).
- `itemknn`: item-item cosine kNN on the binary user x item training matrix (`ItemKNN`).
- `tfrs_recipe`: the TFRS basic-retrieval tutorial (`evaluation.recipe`).
- `random`: seeded uniform scores, the floor for cold-start comparisons (`random_scorer`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from evaluation import recipe
from recstack import features as F
from trainer import data
from trainer.evaluation import EvalSet, popularity_scorer

#: `[b]` rows of `EvalSet.users` -> `[b, num_items]` scores.
Scorer = Callable[[np.ndarray], np.ndarray]


@dataclasses.dataclass(frozen=True)
class BaselineConfig:
    """Hyperparameters of the baselines.

    Attributes:
      neighbours: Most similar items kept per item by `itemknn`.
      shrinkage: `itemknn` similarity shrinkage (added to the cosine denominator; 0 = none).
      recipe_epochs: Training epochs of `tfrs_recipe`.
      recipe_batch_size: Training batch size of `tfrs_recipe` (the tutorial's 8192).
      seed: Seed of `tfrs_recipe` training and `random` scores.
    """

    neighbours: int = 100
    shrinkage: float = 0.0
    recipe_epochs: int = 3
    recipe_batch_size: int = recipe.TUTORIAL_BATCH_SIZE
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("neighbours", "recipe_epochs", "recipe_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.shrinkage < 0:
            raise ValueError(f"shrinkage={self.shrinkage} must be >= 0 (0 disables it)")


def random_scorer(eval_set: EvalSet, seed: int = 0) -> Scorer:
    """Uniform random scores in [0, 1); a user's row depends only on `(seed, row)`, so it is
    the same whatever batch the row is scored in."""
    num_items = len(eval_set.corpus_ids)

    def score(rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), num_items))
        for i, row in enumerate(rows):
            out[i] = np.random.default_rng((seed, int(row))).random(num_items)
        return out

    return score


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """`concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])`, vectorised."""
    ends = np.cumsum(lengths)
    return np.repeat(starts - ends + lengths, lengths) + np.arange(ends[-1] if len(ends) else 0)


def _csr(keys: np.ndarray, values: np.ndarray, num_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """`(indptr [num_rows + 1], values sorted by key)` for integer `keys` in [0, num_rows)."""
    order = np.argsort(keys, kind="stable")
    return np.searchsorted(keys[order], np.arange(num_rows + 1)), values[order]


class ItemKNN:
    """Item-item kNN on the binary user x item training matrix `X` (`[users, num_items]`).

    Similarity is cosine between item columns, `sim(i, j) = C[i, j] / (sqrt(n_i * n_j) +
    shrinkage)` with `C = X^T X` the co-occurrence counts and `n_i` the users of item `i`;
    `sim(i, i) = 0`. Each item keeps its `neighbours` most similar items with positive
    similarity (ties broken by the lower index). A user's score for item `j` is the sum of
    `sim(i, j)` over the distinct items `i` of their whole training history (not only the
    recent `history_length`, so it uses at least what the model sees) with `j` among the
    neighbours of `i`; users without training items score 0 everywhere.

    Fitting uses NumPy only (scipy is not a dependency): rows of `C` are counted in blocks
    of at most `block_cells` dense cells and about `block_pairs` expanded (item, user, partner
    item) triples, and only each block's non-zero cells are kept and ranked, so `C` is never
    held whole. Time O(sum_u n_u^2 + num_items^2 + nnz(C) log nnz(C)) (the `num_items^2`
    term is a cheap scan of the count blocks), memory O(interactions + block_cells +
    block_pairs + num_items * neighbours). Measured: 50k items x 100k users in 20 s (2M
    interactions) and 70 s (5M), peaking at about 1.5 GB for the whole process. Scoring `b`
    users costs O(b * num_items + the neighbour lists of their histories) and `[b,
    num_items]` float64 of memory.
    """

    def __init__(
        self,
        neighbours: int = 100,
        shrinkage: float = 0.0,
        block_cells: int = 1 << 22,
        block_pairs: int = 1 << 24,
    ) -> None:
        if neighbours < 1:
            raise ValueError(f"neighbours={neighbours} must be at least 1")
        if shrinkage < 0:
            raise ValueError(f"shrinkage={shrinkage} must be >= 0 (0 disables it)")
        self.neighbours = neighbours
        self.shrinkage = shrinkage
        self.block_cells = block_cells
        self.block_pairs = block_pairs
        self._eval_set: EvalSet | None = None

    def fit(self, layout: F.DataLayout, eval_set: EvalSet) -> ItemKNN:
        """Fits on the training split of `layout`; items outside `eval_set.corpus_ids` are
        dropped (as in `build_eval_set`). Returns self."""
        train = data.read_columns(layout.train_pattern, (F.USER_ID, F.ITEM_ID))
        index = {item: i for i, item in enumerate(eval_set.corpus_ids)}
        items = np.fromiter((index.get(i, -1) for i in train[F.ITEM_ID]), np.int64)
        known = items >= 0
        return self.fit_interactions(train[F.USER_ID][known], items[known], eval_set)

    def fit_interactions(
        self, user_ids: Sequence[str] | np.ndarray, items: np.ndarray, eval_set: EvalSet
    ) -> ItemKNN:
        """Fits on training interactions `(user_ids[n], items[n])`, `items` being corpus indices
        of `eval_set` (repeats count once). Returns self.

        Raises:
          ValueError: the arrays differ in length or an item index is outside the corpus.
        """
        num_items = len(eval_set.corpus_ids)
        items = np.asarray(items, dtype=np.int64)
        if len(user_ids) != len(items):
            raise ValueError(f"{len(user_ids)} user ids for {len(items)} items; pass one each")
        if len(items) and not 0 <= items.min() <= items.max() < num_items:
            raise ValueError(
                f"item indices span [{items.min()}, {items.max()}], outside the corpus of "
                f"{num_items} items; map item ids with the EvalSet's corpus_ids"
            )
        names, users = np.unique(np.asarray(user_ids, dtype=str), return_inverse=True)
        pairs = np.unique(users.astype(np.int64) * num_items + items)
        users, items = np.divmod(pairs, num_items)
        user_ptr = np.searchsorted(users, np.arange(len(names) + 1))
        item_ptr, item_users = _csr(items, users, num_items)
        self._fit_similarity(user_ptr, items, item_ptr, item_users)
        self._user_ptr, self._user_items = user_ptr, items
        row = {name: i for i, name in enumerate(names)}
        self._eval_rows = np.array([row.get(str(u), -1) for u in eval_set.users], dtype=np.int64)
        self._eval_set = eval_set
        return self

    def _fit_similarity(
        self,
        user_ptr: np.ndarray,
        user_items: np.ndarray,
        item_ptr: np.ndarray,
        item_users: np.ndarray,
    ) -> None:
        num_items = len(item_ptr) - 1
        counts, user_len = np.diff(item_ptr), np.diff(user_ptr)
        norms = np.sqrt(counts)
        # Cumulative (item, user, partner item) triples up to each item row, to size blocks.
        owners = np.repeat(np.arange(num_items), counts)
        work = np.cumsum(np.bincount(owners, user_len[item_users], minlength=num_items))
        max_rows = max(1, self.block_cells // max(num_items, 1))
        rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        values, start = [np.zeros(0)], 0
        while start < num_items:
            budget = (work[start - 1] if start else 0) + self.block_pairs
            stop = int(np.searchsorted(work, budget, "right"))
            stop = min(start + max_rows, max(start + 1, stop))
            block_users = item_users[item_ptr[start] : item_ptr[stop]]
            lengths = user_len[block_users]
            owner = np.repeat(np.repeat(np.arange(start, stop), counts[start:stop]), lengths)
            partners = user_items[_ranges(user_ptr[block_users], lengths)]
            # Dense counts of the block's rows of C, then only their non-zero cells.
            co = np.bincount((owner - start) * num_items + partners,
                             minlength=(stop - start) * num_items)  # fmt: skip
            cells = np.flatnonzero(co)
            row, col = np.divmod(cells, num_items)
            row += start
            off_diagonal = row != col
            row, col, count = row[off_diagonal], col[off_diagonal], co[cells[off_diagonal]]
            sim = count / (norms[row] * norms[col] + self.shrinkage)
            kept = self._top(row, col, sim)
            rows.append(row[kept])
            cols.append(col[kept])
            values.append(sim[kept])
            start = stop
        self._sim_ptr = np.searchsorted(np.concatenate(rows), np.arange(num_items + 1))
        self._sim_items, self._sim_values = np.concatenate(cols), np.concatenate(values)

    def _top(self, row: np.ndarray, col: np.ndarray, sim: np.ndarray) -> np.ndarray:
        """Indices of the `(row, col, sim)` cells that are among their row's `neighbours`
        largest, grouped by row; ties at the cut-off go to the lower column index."""
        order = np.lexsort((col, -sim, row))
        row = row[order]
        rank = np.arange(len(row)) - np.searchsorted(row, row)
        return order[rank < self.neighbours]

    def similarity(self, items: np.ndarray | None = None) -> np.ndarray:
        """Dense `[len(items), num_items]` rows of the pruned similarity (all rows by default;
        only for small catalogs or a few rows)."""
        self._check_fitted()
        num_items = len(self._sim_ptr) - 1
        items = np.arange(num_items) if items is None else np.asarray(items, dtype=np.int64)
        return self._gather(items, np.ones(len(items), dtype=np.int64), len(items))

    def _gather(self, sources: np.ndarray, owners: np.ndarray, rows: int) -> np.ndarray:
        """`[rows, num_items]`: row r sums the neighbour lists of the `sources` it owns
        (`owners[r]` consecutive entries of `sources` per row)."""
        num_items = len(self._sim_ptr) - 1
        starts = self._sim_ptr[sources]
        lengths = self._sim_ptr[sources + 1] - starts
        flat = _ranges(starts, lengths)
        cells = np.repeat(np.repeat(np.arange(rows), owners), lengths) * num_items
        scores = np.bincount(cells + self._sim_items[flat], self._sim_values[flat],
                             minlength=rows * num_items)  # fmt: skip
        # Without any cell bincount returns int64 whatever the weights.
        return scores.astype(np.float64, copy=False).reshape(rows, num_items)

    def scorer(self) -> Scorer:
        """Scorer of the `eval_set` given to `fit`: `[b]` user rows -> `[b, num_items]`."""
        self._check_fitted()

        def score(rows: np.ndarray) -> np.ndarray:
            users = self._eval_rows[np.asarray(rows, dtype=np.int64)]
            lengths = np.where(users >= 0, self._user_ptr[users + 1] - self._user_ptr[users], 0)
            history = self._user_items[_ranges(self._user_ptr[users], lengths)]
            return self._gather(history, lengths, len(users))

        return score

    def _check_fitted(self) -> None:
        if self._eval_set is None:
            raise ValueError("ItemKNN is not fitted; call fit(layout, eval_set) first")


def _popularity(layout: F.DataLayout, eval_set: EvalSet, config: BaselineConfig) -> Scorer:
    return popularity_scorer(eval_set)


def _itemknn(layout: F.DataLayout, eval_set: EvalSet, config: BaselineConfig) -> Scorer:
    return ItemKNN(config.neighbours, config.shrinkage).fit(layout, eval_set).scorer()


def _tfrs_recipe(layout: F.DataLayout, eval_set: EvalSet, config: BaselineConfig) -> Scorer:
    model = recipe.train_recipe(layout, config.recipe_epochs, config.recipe_batch_size, config.seed)
    return recipe.recipe_scorer(model, eval_set)


def _random(layout: F.DataLayout, eval_set: EvalSet, config: BaselineConfig) -> Scorer:
    return random_scorer(eval_set, config.seed)


#: Baseline name -> builder `(layout, eval_set, config) -> Scorer`, in report order.
BASELINES: dict[str, Callable[[F.DataLayout, EvalSet, BaselineConfig], Scorer]] = {
    "popularity": _popularity,
    "itemknn": _itemknn,
    "tfrs_recipe": _tfrs_recipe,
    "random": _random,
}


def build_baseline(
    name: str,
    layout: F.DataLayout,
    eval_set: EvalSet,
    config: BaselineConfig = BaselineConfig(),  # noqa: B008  (frozen, so safe to share)
) -> Scorer:
    """Fits baseline `name` (a key of `BASELINES`) on the training split of `layout`.

    Returns:
      Scorer over `eval_set`: `[b]` user rows -> `[b, num_items]` scores.

    Raises:
      ValueError: `name` is not a known baseline.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    return BASELINES[name](layout, eval_set, config)
