"""Rejecting interactions with items that the catalog does not describe.

The catalog's ids reach every worker as a side input (a dict lookup per event), so the events
need no shuffle of their own: at 50 bytes per id, a catalog of ten million items takes about
half a gigabyte per worker.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import apache_beam as beam

from beam_jobs import dead_letters
from beam_jobs.build import to_event
from beam_jobs.parse import SourcedRow
from recstack import features


def catalog_id_entry(item: dict[str, Any]) -> tuple[str, None]:
    """`(item_id, None)`: a catalog item as an entry of an `AsDict` side input of ids."""
    return item[features.ITEM_ID], None


class KeepKnownItemsFn(beam.DoFn):
    """Turns a batch (list) of interaction `SourcedRow`s into a list of the event tuples
    (`build.to_event`) of those whose item is in the catalog; the others become dead letters.

    With `known` None (a non-strict catalog) every interaction is kept.
    """

    def __init__(self) -> None:
        super().__init__()
        self._known = beam.metrics.Metrics.counter(dead_letters.SOURCE_INTERACTIONS, "known_item")
        self._unknown = beam.metrics.Metrics.counter(
            dead_letters.SOURCE_INTERACTIONS, "dead_letter_unknown_item_id"
        )

    def process(self, batch: list[SourcedRow], known: Mapping[str, None] | None = None) -> Iterator:
        events = []
        for sourced in batch:
            item_id = sourced.row[features.ITEM_ID]
            if known is None or item_id in known:
                events.append(to_event(sourced.row))
                continue
            self._unknown.inc()
            reason = (
                f"unknown {features.ITEM_ID} {item_id!r}: not in the item catalog; add the item "
                "to the catalog or set ingest.strict_catalog: false to keep such interactions"
            )
            letter = dead_letters.rejected(dead_letters.SOURCE_INTERACTIONS, sourced, reason)
            yield beam.pvalue.TaggedOutput(dead_letters.DEAD_LETTER_TAG, letter)
        if events:
            self._known.inc(len(events))
            yield events


class CheckKnownItems(beam.PTransform):
    """Keeps the interactions whose item id is in the catalog, as event tuples.

    Applied to a PCollection of batches (lists) of interaction `SourcedRow`s; returns a
    `dead_letters.CheckResult` whose rows are lists of event tuples (`build.EVENT_FIELDS`).
    """

    def __init__(self, catalog_items: beam.PCollection, strict: bool = True) -> None:
        """Args:
        catalog_items: PCollection of item dicts with unique ids (the catalog).
        strict: Reject interactions of unknown items; False keeps them all.
        """
        super().__init__()
        self._catalog_items = catalog_items
        self._strict = strict

    def expand(self, interactions: beam.PCollection) -> dead_letters.CheckResult:
        side = {}
        if self._strict:
            ids = self._catalog_items | "CatalogIds" >> beam.Map(catalog_id_entry)
            side["known"] = beam.pvalue.AsDict(ids)
        result = interactions | "KeepKnown" >> beam.ParDo(KeepKnownItemsFn(), **side).with_outputs(
            dead_letters.DEAD_LETTER_TAG, main="rows"
        )
        return dead_letters.CheckResult(result.rows, result[dead_letters.DEAD_LETTER_TAG])
