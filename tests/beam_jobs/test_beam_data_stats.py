"""Tests of the dataset statistics and their readable summary."""

import collections

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.data_stats import ComputeDataStats, gini, histogram_summary, sparsity
from beam_jobs.summary import WIDTH, format_summary
from recstack import features as F


def _gini_by_pairs(values):
    values = np.asarray(values, dtype=float)
    return float(
        np.abs(values[:, None] - values[None, :]).sum() / (2 * len(values) ** 2 * values.mean())
    )


def _histogram(values):
    return list(collections.Counter(values).items())


@pytest.mark.parametrize(
    "values",
    [[1, 1, 1, 1], [0, 0, 0, 10], [3, 1, 4, 1, 5, 9, 2, 6], [0, 7], list(range(50)) * 3],
)
def test_gini_matches_the_mean_absolute_difference_definition(values):
    assert gini(_histogram(values)) == pytest.approx(_gini_by_pairs(values))


def test_gini_of_nothing_or_zeros_is_zero():
    assert gini([]) == 0.0
    assert gini([(0, 5)]) == 0.0


def test_histogram_summary_gives_inverted_cdf_quantiles():
    rng = np.random.default_rng(0)
    values = rng.integers(1, 200, size=997)
    summary = histogram_summary(_histogram(values.tolist()))
    assert summary["min"] == values.min() and summary["max"] == values.max()
    assert summary["mean"] == pytest.approx(values.mean())
    for q in (0.25, 0.5, 0.75, 0.9, 0.99):
        assert summary[f"p{round(q * 100)}"] == np.quantile(values, q, method="inverted_cdf")
    assert histogram_summary([]) is None


def test_sparsity():
    assert sparsity(3, 2, 4) == pytest.approx(1 - 3 / 8)
    assert sparsity(0, 0, 4) is None


def test_compute_data_stats_on_a_small_dataset():
    events = {"train": {"click": 3, "view": 1}, "eval": {"purchase": 1, "click": 1},
              "test": {"click": 1}}  # fmt: skip
    counts = {"duplicates": 0, "rows": {"train": 4, "eval": 2, "test": 1}, "events": events}
    # (item, (events, train events, first train time)); x is not in the catalog.
    item_counts = [("a", (3, 2, 5)), ("b", (2, 1, 7)), ("c", (1, 0, None)), ("x", (1, 1, 9))]
    catalog = [{F.ITEM_ID: i} for i in ("a", "b", "c", "d")]
    # Users: u1 3 events over 2 items, u2 2 over 2, u3 2 over 2: 6 (user, item) pairs.
    activity = [(3, 2), (2, 2), (2, 2)]
    expected = {
        F.STAT_EVENTS_PER_SPLIT: events,
        F.STAT_DISTINCT_USERS: 3,
        F.STAT_DISTINCT_ITEMS: 4,
        F.STAT_EVENTS_PER_USER: {
            "min": 2,
            "p25": 2,
            "p50": 2,
            "p75": 3,
            "p90": 3,
            "p99": 3,
            "max": 3,
            "mean": 7 / 3,
        },  # fmt: skip
        # Events per item over catalog + interacted items: a 3, b 2, c 1, d 0, x 1.
        F.STAT_ITEM_GINI: pytest.approx(_gini_by_pairs([3, 2, 1, 0, 1])),
        F.STAT_SPARSITY: pytest.approx(1 - 6 / 12),
        F.STAT_COLD_ITEM_SHARE: 2 / 4,  # c and d have no train event.
    }
    with test_pipeline.TestPipeline() as p:
        inputs = {
            "catalog": p | "Catalog" >> beam.Create(catalog),
            "item_counts": p | "ItemCounts" >> beam.Create(item_counts),
            "activity": p | "Activity" >> beam.Create(activity),
            "counts": p | "Counts" >> beam.Create([counts]),
        }
        assert_that(inputs | ComputeDataStats(), equal_to([expected]))


def test_compute_data_stats_on_empty_inputs():
    empty_events = {"train": {}, "eval": {}, "test": {}}
    counts = {"duplicates": 0, "rows": {"train": 0, "eval": 0, "test": 0}, "events": empty_events}
    with test_pipeline.TestPipeline() as p:
        inputs = {
            name: p | f"Create{name}" >> beam.Create([])
            for name in ("catalog", "item_counts", "activity")
        }
        inputs["counts"] = p | "Counts" >> beam.Create([counts])
        expected = {
            F.STAT_EVENTS_PER_SPLIT: empty_events,
            F.STAT_DISTINCT_USERS: 0,
            F.STAT_DISTINCT_ITEMS: 0,
            F.STAT_EVENTS_PER_USER: None,
            F.STAT_ITEM_GINI: 0.0,
            F.STAT_SPARSITY: None,
            F.STAT_COLD_ITEM_SHARE: None,
        }
        assert_that(inputs | ComputeDataStats(), equal_to([expected]))


def test_the_summary_shows_every_figure_within_the_width():
    stats = {
        F.STAT_ROWS_IN: 1234567,
        F.STAT_ROWS_WRITTEN: 1200000,
        F.STAT_TRAIN_ROWS: 1000000,
        F.STAT_EVAL_ROWS: 150000,
        F.STAT_TEST_ROWS: 50000,
        F.STAT_DEAD_LETTERS: 34000,
        F.STAT_DUPLICATES_DROPPED: 567,
        F.STAT_SPLIT_METHOD: "time",
        F.STAT_SPLIT_TIMESTAMP: 1700000000,
        F.STAT_TEST_SPLIT_TIMESTAMP: None,
        F.STAT_EVENTS_PER_SPLIT: {"train": {"click": 900000, "view": 100000}, "eval": {}},
        F.STAT_ITEM_GINI: 0.61234,
        F.STAT_EVENTS_PER_USER: {"min": 1, "p50": 17, "max": 900, "mean": 24.5},
    }
    text = format_summary(stats)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    for fragment in (
        "1,234,567", "1,000,000", "34,000", "567", "2023-11-14 22:13:20 UTC", "900,000",
        "100,000", "0.6123", "24.5000", "time",
    ):  # fmt: skip
        assert fragment in text, fragment
    click = next(line for line in text.splitlines() if line.strip().startswith("click"))
    assert click.split()[1:] == ["900,000", "0", "0"]
