"""Event -> training label and example weight, from configuration."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from beam_jobs import dead_letters
from beam_jobs.readers import RecordBatch
from recstack import features

#: In `event_labels`, this value means "use the row's `value` as the label" (e.g. ratings).
FROM_VALUE = "value"


def validate_event_labels(labels: Mapping[str, Any], weights: Mapping[str, Any]) -> None:
    """Checks the `ingest.event_labels` / `ingest.event_weights` mappings.

    Raises:
      ValueError: a label is neither a finite number nor "value", a weight is not a finite
        number >= 0, or a weight names an event that `event_labels` (when non-empty) lacks.
    """
    for event, label in labels.items():
        if label != FROM_VALUE and (
            isinstance(label, bool)
            or not isinstance(label, int | float)
            or not math.isfinite(label)
        ):
            raise ValueError(
                f"ingest.event_labels[{event!r}]={label!r} must be a number or {FROM_VALUE!r} "
                "(use the row's value, e.g. for ratings)"
            )
    for event, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight >= 0:
            raise ValueError(f"ingest.event_weights[{event!r}]={weight!r} must be a number >= 0")
        if labels and event not in labels:
            raise ValueError(
                f"ingest.event_weights names event {event!r}, which ingest.event_labels lacks; "
                f"add it there (known events: {sorted(labels)})"
            )


class AssignLabelsFn(beam.DoFn):
    """Adds `label` and `weight` to each interaction of a batch (a list of `SourcedRow`s);
    unknown events become dead letters. Yields the labelled batch when not empty.

    With empty `labels` every event is positive implicit feedback (label 1.0).
    """

    def __init__(self, labels: Mapping[str, Any], weights: Mapping[str, float]) -> None:
        self._labels = dict(labels)
        self._weights = dict(weights)
        self._unknown = Metrics.counter("interactions", "dead_letter_unknown_event")

    def process(self, batch: list[Any]) -> Iterator[Any]:
        labelled = RecordBatch()
        for sourced in batch:
            row = dict(sourced.row)
            event = row[features.EVENT]
            if self._labels and event not in self._labels:
                self._unknown.inc()
                reason = (
                    f"event {event!r} has no label in ingest.event_labels (known: "
                    f"{sorted(self._labels)}); add it to the config or fix the row"
                )
                yield beam.pvalue.TaggedOutput(
                    dead_letters.DEAD_LETTER_TAG,
                    dead_letters.rejected(dead_letters.SOURCE_INTERACTIONS, sourced, reason),
                )
                continue
            label = self._labels.get(event, 1.0)
            row[features.LABEL] = float(row[features.VALUE] if label == FROM_VALUE else label)
            row[features.WEIGHT] = float(self._weights.get(event, 1.0))
            labelled.append(sourced._replace(row=row))
        if labelled:
            yield labelled


class AssignLabels(beam.PTransform):
    """Applied to batches (lists) of interaction `SourcedRow`s; returns a
    `dead_letters.CheckResult` whose rows are labelled batches."""

    def __init__(self, labels: Mapping[str, Any], weights: Mapping[str, float]) -> None:
        super().__init__()
        validate_event_labels(labels, weights)
        self._labels = labels
        self._weights = weights

    def expand(self, rows: beam.PCollection) -> dead_letters.CheckResult:
        if not self._labels and not self._weights:
            # Every event is positive with weight 1.0, the defaults of `build.to_event`; the
            # rows pass through untouched (no copy per row).
            return dead_letters.CheckResult(rows, rows.pipeline | "NoLetters" >> beam.Create([]))
        result = rows | "Assign" >> beam.ParDo(
            AssignLabelsFn(self._labels, self._weights)
        ).with_outputs(dead_letters.DEAD_LETTER_TAG, main="rows")
        return dead_letters.CheckResult(result.rows, result[dead_letters.DEAD_LETTER_TAG])
