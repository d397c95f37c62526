"""Event labels/weights and exact-duplicate removal."""

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.build import to_event
from beam_jobs.config import IngestConfig
from beam_jobs.labels import AssignLabels
from beam_jobs.parse import SourcedRow
from recstack import features as F


def _sourced(event, value=0.0, line=1):
    row = {F.USER_ID: "u", F.ITEM_ID: "i", F.TIMESTAMP: line, F.EVENT: event, F.VALUE: value}
    return SourcedRow("log.jsonl", f"raw {line}", row, line)


def test_labels_from_config_value_events_and_unknown_events_dead_lettered():
    rows = [_sourced("purchase", line=1), _sourced("rating", 4.5, 2), _sourced("hover", line=3)]
    with TestPipeline() as p:
        result = (
            p
            | beam.Create([rows])  # One batch.
            | AssignLabels({"purchase": 1.0, "rating": "value", "click": 0.0}, {"purchase": 2.0})
        )
        labelled = result.rows | beam.Map(
            lambda batch: [(s.row[F.EVENT], s.row[F.LABEL], s.row[F.WEIGHT]) for s in batch]
        )
        assert_that(labelled, equal_to([[("purchase", 1.0, 2.0), ("rating", 4.5, 1.0)]]))
        reasons = result.dead_letters | beam.Map(
            lambda d: (d["raw"], d["line"], "'hover'" in d["reason"])
        )
        assert_that(reasons, equal_to([("raw 3", 3, True)]), label="DeadLetters")


def test_empty_mapping_makes_every_event_positive():
    with TestPipeline() as p:
        result = p | beam.Create([[_sourced("anything")]]) | AssignLabels({}, {})
        # The rows pass through; their event tuples carry label and weight 1.0.
        got = result.rows | beam.FlatMap(lambda b: [list(to_event(s.row)[5:]) for s in b])
        assert_that(got, equal_to([[1.0, 1.0]]), label="LabelWeight")
        assert_that(result.dead_letters, equal_to([]), label="NoLetters")


def test_a_batch_of_only_unknown_events_yields_no_empty_batch():
    with TestPipeline() as p:
        result = p | beam.Create([[_sourced("hover")]]) | AssignLabels({"click": 1.0}, {})
        assert_that(result.rows, equal_to([]), label="Rows")
        count = result.dead_letters | beam.combiners.Count.Globally()
        assert_that(count, equal_to([1]), label="DeadLetters")


@pytest.mark.parametrize(
    "labels, weights, message",
    [
        ({"click": "lots"}, {}, r"event_labels\['click'\]='lots'"),
        ({}, {"click": -1}, r"event_weights\['click'\]=-1"),
        ({"click": 1.0}, {"view": 0.1}, "names event 'view'"),
    ],
)
def test_bad_label_config_is_rejected(labels, weights, message):
    with pytest.raises(ValueError, match=message):
        IngestConfig(event_labels=labels, event_weights=weights)
