"""The item catalog as the model sees it: ids, titles, text and categories of every item.

The candidate tower looks item features up by id inside the graph, so training examples and
serving requests only carry item ids, and catalog items without interactions (cold start)
still get vectors from their text and categories.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recstack import features as F
from recstack import text as text_lib
from trainer import data

#: Category id reserved for padding (no category).
PAD_CATEGORY = ""


@dataclasses.dataclass(frozen=True)
class Catalog:
    """Every catalog item, row `i` describing `ids[i]`.

    Attributes:
      ids: `[n]` item ids.
      titles: `[n]` titles.
      texts: `[n]` item texts (`recstack.text.item_text`), what the text tower encodes.
      categories: `[n, max_categories]` category names, padded with `PAD_CATEGORY`.
      category_vocabulary: Distinct category names, most frequent first.
    """

    ids: np.ndarray
    titles: np.ndarray
    texts: np.ndarray
    categories: np.ndarray
    category_vocabulary: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


def read_catalog(layout: F.DataLayout) -> Catalog:
    """Reads the item corpus TFRecords of an ingested data directory.

    Raises:
      FileNotFoundError: the directory has no item corpus.
      ValueError: the corpus is empty.
    """
    rows = []
    for batch in data.make_dataset(layout.items_pattern, 4096, F.ITEM_FEATURES):
        columns = [batch[name].numpy() for name in (F.ITEM_ID, F.TITLE, F.DESCRIPTION)]
        categories = batch[F.CATEGORIES].to_list()
        for item, title, description, cats in zip(*columns, categories, strict=True):
            rows.append({F.ITEM_ID: item.decode(), F.TITLE: title.decode(),
                         F.DESCRIPTION: description.decode(),
                         F.CATEGORIES: [c.decode() for c in cats]})  # fmt: skip
    if not rows:
        raise ValueError(f"the item corpus {layout.items_pattern} is empty")
    return catalog_from_rows(rows)


def catalog_from_rows(rows: list[dict]) -> Catalog:
    """Builds a `Catalog` from item dicts (`features.ITEM_FEATURES` keys; str values)."""
    counts: dict[str, int] = {}
    for row in rows:
        for category in row.get(F.CATEGORIES) or ():
            counts[category] = counts.get(category, 0) + 1
    width = max((len(row.get(F.CATEGORIES) or ()) for row in rows), default=0)
    categories = np.full((len(rows), max(width, 1)), PAD_CATEGORY, dtype=object)
    for index, row in enumerate(rows):
        for slot, category in enumerate(row.get(F.CATEGORIES) or ()):
            categories[index, slot] = category
    return Catalog(
        ids=np.array([row[F.ITEM_ID] for row in rows], dtype=object),
        titles=np.array([row.get(F.TITLE) or "" for row in rows], dtype=object),
        texts=np.array([text_lib.item_text(row) for row in rows], dtype=object),
        categories=categories,
        category_vocabulary=tuple(sorted(counts, key=lambda c: (-counts[c], c))),
    )
