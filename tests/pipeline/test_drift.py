"""Tests of ExampleValidator's baseline comparisons: event, popularity and Gini drift from
modified statistics, new-id shares from hand-written vocabularies."""

import math
import os

import numpy as np
import pytest

from pipeline.anomalies import (
    ERROR,
    EVENT_DRIFT,
    GINI_DRIFT,
    INFO,
    NEW_ITEMS,
    NEW_USERS,
    POPULARITY_DRIFT,
    Findings,
)
from pipeline.drift import (
    check_drift,
    check_new_ids,
    js_divergence,
    linf_distance,
    top_value_distribution,
)
from pipeline.validation import ValidationConfig
from recstack import features as F

CONFIG = ValidationConfig()
EVENTS = {"view": 50, "click": 30, "purchase": 20}
ITEMS = {"i1": 40, "i2": 30, "i3": 20, "i4": 10}


def _bytes(counts):
    return {"num_unique": len(counts), "total_count": sum(counts.values()),
            "top_values": [{"value": v, "count": c} for v, c in counts.items()]}  # fmt: skip


def statistics(events=EVENTS, items=ITEMS, gini=0.3):
    """Statistics with the parts the drift checks read: train's event and item_id top values
    and ingest's item popularity Gini."""
    features = {F.EVENT: {"bytes": _bytes(events)}, F.ITEM_ID: {"bytes": _bytes(items)}}
    return {"splits": {"train": {"num_examples": 100, "features": features}},
            "ingest": {F.STAT_ITEM_GINI: gini}}  # fmt: skip


def only(anomalies, kind):
    (anomaly,) = [a for a in anomalies if a.kind == kind]
    return anomaly


def drift(current, config=CONFIG):
    found = Findings(config)
    check_drift(found, current, statistics())
    return found.anomalies


def test_same_distributions_or_missing_statistics_have_no_drift():
    assert drift(statistics()) == []
    assert drift({"splits": {}}) == []


def test_shifted_event_distribution():
    (anomaly,) = drift(statistics(events={"view": 30, "click": 30, "purchase": 40}))
    assert (anomaly.kind, anomaly.severity, anomaly.threshold) == (EVENT_DRIFT, ERROR, 0.1)
    assert anomaly.value == pytest.approx(0.2)  # view 0.5 -> 0.3 and purchase 0.2 -> 0.4
    assert "most for 'view': 50.0% -> 30.0%" in anomaly.description


def _js_by_entropies(p, q):
    def entropy(x):
        x = x[x > 0]
        return float(-(x * np.log2(x)).sum())

    return entropy((p + q) / 2) - (entropy(p) + entropy(q)) / 2


def test_shifted_popularity_distribution():
    stats = statistics(items={"i4": 40, "i3": 30, "i2": 20, "i1": 10})
    expected = _js_by_entropies(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0.4, 0.3, 0.2, 0.1]))
    assert 0.1 < expected < 0.2  # below the default threshold
    assert drift(stats) == []
    (anomaly,) = drift(stats, ValidationConfig(popularity_drift_threshold=0.1))
    assert anomaly.kind == POPULARITY_DRIFT and anomaly.value == pytest.approx(expected)
    assert f"Jensen-Shannon divergence {expected:.3f} (base 2); threshold 0.100" in (
        anomaly.description
    )
    (anomaly,) = drift(statistics(items={"i7": 60, "i8": 40}))  # a new set of hits
    assert anomaly.value == pytest.approx(1.0)


def test_distributions_keep_an_other_bucket_and_js_is_bounded():
    dist = top_value_distribution({"total_count": 10, "top_values": [{"value": "a", "count": 6}]})
    assert sorted(dist.values()) == [0.4, 0.6] and dist["a"] == 0.6
    assert top_value_distribution({"total_count": 0, "top_values": []}) == {}
    assert js_divergence({"a": 1.0}, {"b": 1.0}) == pytest.approx(1.0)
    assert js_divergence({"a": 0.5, "b": 0.5}, {"b": 0.5, "a": 0.5}) == 0.0
    p, q = {"a": 0.2, "b": 0.8}, {"a": 0.6, "b": 0.3, "c": 0.1}
    expected = _js_by_entropies(np.array([0.2, 0.8, 0.0]), np.array([0.6, 0.3, 0.1]))
    assert js_divergence(p, q) == pytest.approx(expected) and not math.isnan(expected)
    assert linf_distance(p, q) == pytest.approx(0.5) and linf_distance({}, {}) == 0.0


def test_gini_drift():
    (anomaly,) = drift(statistics(gini=0.45))
    assert (anomaly.kind, anomaly.split) == (GINI_DRIFT, "ingest")
    assert anomaly.value == pytest.approx(0.15)
    assert "moved from 0.300 to 0.450; threshold 0.100" in anomaly.description


def _write_vocab(data_dir, name, counts):
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, name), "w") as f:
        f.writelines(F.format_vocabulary_line(t, n, 0) for t, n in counts.items())


def test_new_item_share_above_threshold_is_an_error_new_users_below_are_info(tmp_path):
    base, now = str(tmp_path / "base"), str(tmp_path / "now")
    _write_vocab(base, F.ITEM_VOCAB_FILE, {"i1": 5, "i2": 5})
    _write_vocab(now, F.ITEM_VOCAB_FILE, {"i1": 10, "i5": 30, "i6": 60})
    _write_vocab(base, F.USER_VOCAB_FILE, {"u1": 1, "u2": 1})
    _write_vocab(now, F.USER_VOCAB_FILE, {"u1": 90, "u3": 10})
    found = Findings(CONFIG)
    check_new_ids(found, now, base)
    items, users = (only(found.anomalies, kind) for kind in (NEW_ITEMS, NEW_USERS))
    assert (items.severity, items.value, items.threshold) == (ERROR, 0.9, 0.5)
    assert "has 2 ids unknown to the baseline, in 90.0% of train interactions" in items.description
    assert (users.severity, users.value) == (INFO, 0.1)
    with pytest.raises(FileNotFoundError, match=F.ITEM_VOCAB_FILE):
        check_new_ids(Findings(CONFIG), now, str(tmp_path))
