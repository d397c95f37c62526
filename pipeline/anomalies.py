"""The findings of ExampleValidator: their kinds and severities, the `Anomaly` record, and the
collector that the schema checks (`pipeline.validation`) and the baseline comparisons
(`pipeline.drift`) both report to.

This module imports neither of them at run time, so both can import it.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Only for the annotation; `pipeline.validation` imports this module.
    from pipeline.validation import ValidationConfig

ERROR, WARNING, INFO = "error", "warning", "info"
#: Severities, most severe first; "info" notes expected change below a threshold.
SEVERITIES = (ERROR, WARNING, INFO)
#: Anomaly kinds (the names `ValidationConfig.warn_only` takes).
MISSING_FEATURE = "missing_feature"
UNEXPECTED_FEATURE = "unexpected_feature"
TYPE_CHANGE = "type_change"
OUT_OF_RANGE = "out_of_range"
VALUE_COUNT = "value_count"
UNSEEN_CATEGORY = "unseen_category"
EMPTY_SPLIT = "empty_split"
MISSING_SPLIT = "missing_split"
DEAD_LETTERS = "dead_letters"
EVENT_DRIFT = "event_drift"
POPULARITY_DRIFT = "popularity_drift"
GINI_DRIFT = "gini_drift"
NEW_ITEMS = "new_items"
NEW_USERS = "new_users"
KINDS = (
    MISSING_FEATURE,
    UNEXPECTED_FEATURE,
    TYPE_CHANGE,
    OUT_OF_RANGE,
    VALUE_COUNT,
    UNSEEN_CATEGORY,
    EMPTY_SPLIT,
    MISSING_SPLIT,
    DEAD_LETTERS,
    EVENT_DRIFT,
    POPULARITY_DRIFT,
    GINI_DRIFT,
    NEW_ITEMS,
    NEW_USERS,
)
#: The `Anomaly.split` of findings about the whole ingestion (stats.json).
INGEST = "ingest"
#: Thresholds that are not shares (printed as numbers, the others as percentages).
_UNITLESS = ("popularity_drift_threshold", "gini_drift_threshold")


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """One finding of the validator.

    Attributes:
      split: Split name, or `INGEST` for findings about the ingestion as a whole.
      feature: Feature (or stats.json key) concerned; None for a whole split.
      kind: One of `KINDS`.
      severity: One of `SEVERITIES`.
      description: Readable sentence naming the value, the threshold and the fix.
      value: The measured number (a share, a distance, a bound), None where there is none.
      threshold: The limit `value` crossed, None where there is none.
    """

    split: str
    feature: str | None
    kind: str
    severity: str
    description: str
    value: float | None = None
    threshold: float | None = None


class Findings:
    """Collects anomalies; downgrades the config's `warn_only` kinds to warnings."""

    def __init__(self, config: ValidationConfig) -> None:
        """Args:
        config: Thresholds and `warn_only` kinds of the validator.
        """
        self.config = config
        self.anomalies: list[Anomaly] = []

    def add(
        self,
        split: str,
        feature: str | None,
        kind: str,
        text: str,
        severity: str = ERROR,
        value: float | None = None,
        threshold: float | None = None,
    ) -> None:
        """Adds an anomaly, its description prefixed with where it is ("train: feature
        'event' ...", "eval: the split ...")."""
        if severity == ERROR and kind in self.config.warn_only:
            severity, text = WARNING, f"{text} [warning only: validation.warn_only]"
        where = f"feature {feature!r} " if feature else "the split "
        text = f"{split}: {'' if split == INGEST else where}{text}"
        self.anomalies.append(Anomaly(split, feature, kind, severity, text, value, threshold))

    def limit(
        self,
        split: str,
        feature: str | None,
        kind: str,
        text: str,
        value: float,
        key: str,
        below: str | None = None,
    ) -> None:
        """An error when `value` exceeds the config's `key`; severity `below` for a positive
        value within it (None: nothing)."""
        threshold = getattr(self.config, key)
        shown = f"{threshold:.3f}" if key in _UNITLESS else f"{threshold:.1%}"
        text = f"{text}; threshold {shown} (validation.{key})"
        severity = ERROR if value > threshold else below if value > 0 else None
        if severity:
            self.add(split, feature, kind, text, severity, value, threshold)
