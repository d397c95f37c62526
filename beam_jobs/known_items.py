"""Rejecting interactions with items that the catalog does not describe."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from beam_jobs import dead_letters
from beam_jobs.parse import SourcedRow
from recstack import features

_INTERACTIONS = "interactions"
_CATALOG = "catalog"


def _key_interaction(sourced: SourcedRow) -> tuple[str, SourcedRow]:
    return sourced.row[features.ITEM_ID], sourced


def _key_catalog_item(item: dict[str, Any]) -> tuple[str, None]:
    return item[features.ITEM_ID], None


def row_of(sourced: SourcedRow) -> dict[str, Any]:
    """Returns the row of a `SourcedRow`, dropping the file and line it came from."""
    return sourced.row


class KeepKnownItemsFn(beam.DoFn):
    """Emits the interactions of items present in the catalog; others become dead letters.

    Input is `(item_id, {"interactions": [SourcedRow...], "catalog": [None...]})` from a
    CoGroupByKey; keys with no interactions (cold items) emit nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self._known = beam.metrics.Metrics.counter(dead_letters.SOURCE_INTERACTIONS, "known_item")
        self._unknown = beam.metrics.Metrics.counter(
            dead_letters.SOURCE_INTERACTIONS, "dead_letter_unknown_item_id"
        )

    def process(self, element: tuple[str, dict[str, Iterable[Any]]]) -> Iterator[Any]:
        item_id, grouped = element
        in_catalog = any(True for _ in grouped[_CATALOG])
        for sourced in grouped[_INTERACTIONS]:
            if in_catalog:
                self._known.inc()
                yield sourced.row
                continue
            self._unknown.inc()
            reason = (
                f"unknown {features.ITEM_ID} {item_id!r}: not in the item catalog; add the item "
                "to the catalog or set ingest.strict_catalog: false to keep such interactions"
            )
            letter = dead_letters.rejected(dead_letters.SOURCE_INTERACTIONS, sourced, reason)
            yield beam.pvalue.TaggedOutput(dead_letters.DEAD_LETTER_TAG, letter)


class DropUnknownItems(beam.PTransform):
    """Keeps the interactions whose item id is in the catalog.

    Applied to a PCollection of interaction `SourcedRow`s; returns a `dead_letters.CheckResult`
    whose rows are interaction dicts. The check is a CoGroupByKey join on item id rather than a
    side input of catalog ids, so that neither side has to fit in one worker's memory.
    """

    def __init__(self, catalog_items: beam.PCollection) -> None:
        """Args: catalog_items: PCollection of item dicts with unique ids (the catalog)."""
        super().__init__()
        self._catalog_items = catalog_items

    def expand(self, interactions: beam.PCollection) -> dead_letters.CheckResult:
        keyed_interactions = interactions | "KeyInteractionsByItemId" >> beam.Map(_key_interaction)
        keyed_catalog = self._catalog_items | "KeyCatalogByItemId" >> beam.Map(_key_catalog_item)
        result = (
            {_INTERACTIONS: keyed_interactions, _CATALOG: keyed_catalog}
            | "JoinOnItemId" >> beam.CoGroupByKey()
            | "KeepKnown"
            >> beam.ParDo(KeepKnownItemsFn()).with_outputs(
                dead_letters.DEAD_LETTER_TAG, main="rows"
            )
        )
        return dead_letters.CheckResult(result.rows, result[dead_letters.DEAD_LETTER_TAG])
