"""Dataset statistics beyond row counts: activity, popularity skew, sparsity, cold items.

Everything is computed inside the pipeline from per-key counts and small histograms (count
value -> how many users or items have it), so no step holds all users or items in one worker:
quantiles and the Gini coefficient are exact and scale to catalogs of any size.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import apache_beam as beam

from beam_jobs.known_items import catalog_id_entry
from recstack import features

#: Quantiles of events per user reported in stats.json (plus min, max and mean).
QUANTILES = (0.25, 0.5, 0.75, 0.9, 0.99)


def gini(histogram: Iterable[tuple[int, int]]) -> float:
    """Returns the Gini coefficient of non-negative values given as `(value, multiplicity)`.

    With the values sorted ascending, x_1..x_n, G = sum_i (2i - n - 1) x_i / (n sum_i x_i):
    0 when all are equal, (n - 1) / n when one holds everything. A run of m equal values v at
    ranks r+1..r+m contributes v * m * (2r + m - n). Returns 0.0 for no values or a zero sum.
    """
    pairs = sorted((value, count) for value, count in histogram if count > 0)
    n = sum(count for _, count in pairs)
    total = sum(value * count for value, count in pairs)
    if n == 0 or total == 0:
        return 0.0
    weighted, rank = 0, 0
    for value, count in pairs:
        weighted += value * count * (2 * rank + count - n)
        rank += count
    return weighted / (n * total)


def histogram_summary(histogram: Iterable[tuple[int, int]]) -> dict[str, float] | None:
    """Returns min, the `QUANTILES`, max and mean of values given as `(value, multiplicity)`.

    Quantile q is the smallest value v such that at least a share q of the values is <= v
    (numpy's "inverted_cdf" method). Returns None for no values.
    """
    pairs = sorted((value, count) for value, count in histogram if count > 0)
    n = sum(count for _, count in pairs)
    if n == 0:
        return None
    summary: dict[str, float] = {"min": pairs[0][0]}
    for q in QUANTILES:
        seen = 0
        for value, count in pairs:
            seen += count
            if seen >= q * n:
                summary[f"p{round(q * 100)}"] = value
                break
    summary["max"] = pairs[-1][0]
    summary["mean"] = sum(value * count for value, count in pairs) / n
    return summary


def sparsity(pairs: int, users: int, items: int) -> float | None:
    """Returns 1 - pairs / (users * items), the share of empty user-item cells; None when
    there are no users or items."""
    if users == 0 or items == 0:
        return None
    return 1.0 - pairs / (users * items)


def _first(pair: tuple[int, int]) -> int:
    return pair[0]


def _second(pair: tuple[int, int]) -> int:
    return pair[1]


def _item_entry(
    kv: tuple[str, tuple[int, int, Any]], catalog: Mapping[str, None]
) -> tuple[int, tuple[int, int, int]]:
    """(item, (events, train events, _)) -> (events, (1, in catalog, in catalog with a train
    event)); the flags sum to (interacted items, of them in the catalog, ... with train events)."""
    item, (events, train, _) = kv
    in_catalog = item in catalog
    return events, (1, int(in_catalog), int(in_catalog and train > 0))


def _events_per_split(counts: dict[str, Any]) -> dict[str, Any]:
    return counts["events"]


def _sum_triples(triples: Iterable[tuple[int, int, int]]) -> tuple[int, int, int]:
    a = b = c = 0
    for x, y, z in triples:
        a, b, c = a + x, b + y, c + z
    return a, b, c


class _Histogram(beam.PTransform):
    """Values -> list of `(value, multiplicity)` pairs (one element)."""

    def expand(self, values: beam.PCollection) -> beam.PCollection:
        return (
            values
            | "CountPerValue" >> beam.combiners.Count.PerElement()
            | "Collect" >> beam.combiners.ToList()
        )


def _finish(
    _: Any,
    events: dict[str, dict[str, int]],
    user_histogram: list[tuple[int, int]],
    item_histogram: list[tuple[int, int]],
    item_flags: tuple[int, int, int],
    catalog_items: int,
    pairs: int,
) -> dict[str, Any]:
    distinct_users = sum(count for _, count in user_histogram)
    distinct_items, interacted_in_catalog, trained_in_catalog = item_flags
    # Catalog items without any event count as zeros in the popularity distribution.
    popularity = [*item_histogram, (0, catalog_items - interacted_in_catalog)]
    cold_items = catalog_items - trained_in_catalog
    return {
        features.STAT_EVENTS_PER_SPLIT: events,
        features.STAT_DISTINCT_USERS: distinct_users,
        features.STAT_DISTINCT_ITEMS: distinct_items,
        features.STAT_EVENTS_PER_USER: histogram_summary(user_histogram),
        features.STAT_ITEM_GINI: gini(popularity),
        features.STAT_SPARSITY: sparsity(pairs, distinct_users, distinct_items),
        features.STAT_COLD_ITEM_SHARE: cold_items / catalog_items if catalog_items else None,
    }


class ComputeDataStats(beam.PTransform):
    """Computes the dataset statistics of the written interactions and the catalog.

    Applied to a dict of PCollections (see `beam_jobs.build.BuildResult`):
    `{"catalog": item dicts, "item_counts": (item, (events, train events, first train
    time)), "activity": (events, distinct items) per user, "counts": the merged counts}`;
    returns a PCollection of one dict with these `features.STAT_*` keys:

    - events_per_split: `{split: {event type: rows}}`.
    - distinct_users / distinct_items: over all written interactions.
    - events_per_user: min, p25, p50, p75, p90, p99, max, mean over users (all splits).
    - item_popularity_gini: Gini of events per item over the catalog and every interacted
      item (items without events count as 0, so cold items raise it).
    - sparsity: 1 - distinct (user, item) pairs / (distinct users * distinct items).
    - cold_item_share: catalog items without a train event / catalog items.
    """

    def expand(self, inputs: dict[str, beam.PCollection]) -> beam.PCollection:
        activity = inputs["activity"]
        events_per_split = inputs["counts"] | "EventsPerSplit" >> beam.Map(_events_per_split)
        user_histogram = (
            activity | "UserEvents" >> beam.Map(_first) | "UserHistogram" >> _Histogram()
        )
        # Whether an item is in the catalog comes from a side input of the catalog's ids: no
        # join (Flatten + group) of the catalog with the per-item counts.
        catalog_ids = inputs["catalog"] | "CatalogIds" >> beam.Map(catalog_id_entry)
        catalog_items = inputs["catalog"] | "CountCatalog" >> beam.combiners.Count.Globally()
        item_entries = inputs["item_counts"] | "ItemEntries" >> beam.Map(
            _item_entry, beam.pvalue.AsDict(catalog_ids)
        )
        item_histogram = (
            item_entries | "EventsPerItem" >> beam.Map(_first) | "ItemHistogram" >> _Histogram()
        )
        item_flags = (
            item_entries
            | "ItemFlags" >> beam.Map(_second)
            | "SumFlags" >> beam.CombineGlobally(_sum_triples)
        )
        pairs = (
            activity | "UserItems" >> beam.Map(_second) | "CountPairs" >> beam.CombineGlobally(sum)
        )
        side = beam.pvalue.AsSingleton
        return (
            activity.pipeline
            | "Start" >> beam.Create([None])
            | "Finish"
            >> beam.Map(
                _finish,
                side(events_per_split),
                side(user_histogram),
                side(item_histogram),
                side(item_flags),
                side(catalog_items),
                side(pairs),
            )
        )
