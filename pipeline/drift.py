"""ExampleValidator's comparisons against a baseline run (the one that trained the serving
model): drift of the train split's event mix, of item popularity and of its Gini coefficient
(from the statistics), and the share of interactions by new users and items (from the
vocabularies). `pipeline.validation.validate` runs them; they report to its `Findings`.
"""

from __future__ import annotations

import math
from typing import Any

from pipeline.anomalies import (
    EVENT_DRIFT,
    GINI_DRIFT,
    INFO,
    INGEST,
    NEW_ITEMS,
    NEW_USERS,
    POPULARITY_DRIFT,
    Findings,
)
from recstack import features as F
from recstack import fs

_OTHER = "\x00other"  # The bucket of values beyond the top values; no id starts with NUL.


def top_value_distribution(strings: dict[str, Any]) -> dict[str, float]:
    """Returns the shares of a string feature's top values plus an "other" bucket holding
    the values beyond them, from a statistics `bytes` entry ({} for no values)."""
    total = strings["total_count"]
    if not total:
        return {}
    shares = {top["value"]: top["count"] / total for top in strings["top_values"]}
    rest = total - sum(top["count"] for top in strings["top_values"])
    return {**shares, _OTHER: rest / total} if rest else shares


def linf_distance(p: dict[str, float], q: dict[str, float]) -> float:
    """Largest absolute difference of two distributions over the union of their keys."""
    return max((abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q)), default=0.0)


def js_divergence(p: dict[str, float], q: dict[str, float]) -> float:
    """Jensen-Shannon divergence, base 2: 0 for equal, 1 for disjoint distributions."""

    def kl_to_mean(a: dict[str, float], b: dict[str, float]) -> float:
        return sum(v * math.log2(2 * v / (v + b.get(k, 0.0))) for k, v in a.items() if v > 0)

    return 0.5 * kl_to_mean(p, q) + 0.5 * kl_to_mean(q, p)


def _train_strings(statistics: dict[str, Any], feature: str) -> dict[str, Any] | None:
    return statistics["splits"].get("train", {}).get("features", {}).get(feature, {}).get("bytes")


def check_drift(found: Findings, current: dict[str, Any], baseline: dict[str, Any]) -> None:
    """Adds the drift anomalies of `current` against `baseline` to `found`.

    Event drift (L-infinity distance of the train event-type distributions), popularity drift
    (Jensen-Shannon divergence of the train item_id distributions) and Gini drift (ingest's
    item_popularity_gini); each only when both statistics have the numbers.

    Args:
      found: The collector; its config holds the thresholds.
      current: `pipeline.statistics.compute_statistics` output of the new data.
      baseline: The same for the baseline run.
    """
    now, base = _train_strings(current, F.EVENT), _train_strings(baseline, F.EVENT)
    if now and base:
        p, q = top_value_distribution(now), top_value_distribution(base)
        distance = linf_distance(p, q)
        moved = max(set(p) | set(q), key=lambda k: (abs(p.get(k, 0.0) - q.get(k, 0.0)), k))
        text = (
            f"distribution moved by {distance:.1%} (L-infinity) from the baseline's; most for "
            f"{moved!r}: {q.get(moved, 0.0):.1%} -> {p.get(moved, 0.0):.1%}"
        )
        found.limit("train", F.EVENT, EVENT_DRIFT, text, distance, "event_drift_threshold")
    now, base = _train_strings(current, F.ITEM_ID), _train_strings(baseline, F.ITEM_ID)
    if now and base:
        js = js_divergence(top_value_distribution(now), top_value_distribution(base))
        text = f"popularity moved from the baseline's: Jensen-Shannon divergence {js:.3f} (base 2)"
        found.limit("train", F.ITEM_ID, POPULARITY_DRIFT, text, js, "popularity_drift_threshold")
    now = current.get(INGEST, {}).get(F.STAT_ITEM_GINI)
    base = baseline.get(INGEST, {}).get(F.STAT_ITEM_GINI)
    if now is not None and base is not None:
        text = f"item popularity Gini moved from {base:.3f} to {now:.3f}"
        found.limit(
            INGEST, F.STAT_ITEM_GINI, GINI_DRIFT, text, abs(now - base), "gini_drift_threshold"
        )


def _read_vocabulary(path: str) -> dict[str, int]:
    if not fs.exists(path):
        raise FileNotFoundError(f"{path} does not exist; pass ingested data directories")
    with fs.open_file(path) as f:
        return dict(F.parse_vocabulary_line(line)[:2] for line in f if line.strip())


def check_new_ids(found: Findings, data_dir: str, baseline_data_dir: str) -> None:
    """Adds the new-item and new-user anomalies to `found`: the count-weighted share of train
    interactions whose id is not in the baseline's vocabulary; an error above the config's
    max_new_item_fraction / max_new_user_fraction, info for a smaller positive share.

    Args:
      found: The collector; its config holds the thresholds.
      data_dir: Ingested data directory of the new data (`recstack.features.DataLayout`).
      baseline_data_dir: Ingested data directory of the baseline run.

    Raises:
      FileNotFoundError: a vocabulary file is missing.
    """
    current, baseline = F.DataLayout(data_dir), F.DataLayout(baseline_data_dir)
    for kind, feature, vocab, key in (
        (NEW_ITEMS, F.ITEM_ID, "item_vocab", "max_new_item_fraction"),
        (NEW_USERS, F.USER_ID, "user_vocab", "max_new_user_fraction"),
    ):
        counts = _read_vocabulary(getattr(current, vocab))
        known = _read_vocabulary(getattr(baseline, vocab))
        new = [count for token, count in counts.items() if token not in known]
        share = sum(new) / max(sum(counts.values()), 1)
        text = f"has {len(new)} ids unknown to the baseline, in {share:.1%} of train interactions"
        found.limit("train", feature, kind, text, share, key, below=INFO)
