"""ExampleValidator: anomalies of new statistics against a schema and a baseline run.

Against the schema (`pipeline.schema`): missing required features, unexpected features, type
changes, values out of range, value counts out of range, unseen categories, empty splits.
Against ingest's stats.json: the dead-letter share. Against a baseline (the statistics and
data directory of the run that trained the serving model; `pipeline.drift`): drift of the
event mix, of item popularity and of its Gini coefficient, and the share of interactions by
new users and items. Every description names the value, the threshold and the config key or
the fix. The anomaly kinds, severities and the `Anomaly` record come from `pipeline.anomalies`
and are importable from here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from pipeline.anomalies import (
    DEAD_LETTERS,
    EMPTY_SPLIT,
    ERROR,
    INGEST,
    KINDS,
    MISSING_FEATURE,
    MISSING_SPLIT,
    OUT_OF_RANGE,
    SEVERITIES,
    TYPE_CHANGE,
    UNEXPECTED_FEATURE,
    UNSEEN_CATEGORY,
    VALUE_COUNT,
    WARNING,
    Anomaly,
    Findings,
)

# Re-exported (redundant aliases): the whole anomaly vocabulary stays importable from here.
from pipeline.anomalies import EVENT_DRIFT as EVENT_DRIFT
from pipeline.anomalies import GINI_DRIFT as GINI_DRIFT
from pipeline.anomalies import INFO as INFO
from pipeline.anomalies import NEW_ITEMS as NEW_ITEMS
from pipeline.anomalies import NEW_USERS as NEW_USERS
from pipeline.anomalies import POPULARITY_DRIFT as POPULARITY_DRIFT
from pipeline.drift import check_drift, check_new_ids
from pipeline.schema import format_number
from recstack import features as F
from recstack.fs import write_json

#: Splits that must hold examples; eval and test fall back to train's schema.
REQUIRED_SPLITS = ("train", "eval")


@dataclasses.dataclass(frozen=True)
class ValidationConfig:
    """Thresholds of the ExampleValidator (section `validation` of the pipeline config).

    Attributes:
      max_dead_letter_fraction: Largest share of input rows (interactions, catalog, users)
        that may go to dead letters.
      max_unseen_category_fraction: Largest share of a string feature's values outside its
        schema domain; a smaller positive share is a warning.
      event_drift_threshold: Largest L-infinity distance between the baseline's and the
        current train split's event-type distributions.
      popularity_drift_threshold: Largest Jensen-Shannon divergence (base 2, in [0, 1]) between
        the train item_id distributions (top values plus one "other" bucket each).
      gini_drift_threshold: Largest absolute change of ingest's item_popularity_gini.
      max_new_item_fraction: Largest share of train interactions (count-weighted, from the
        vocabularies) whose item is not in the baseline's vocabulary; a smaller positive share
        is info.
      max_new_user_fraction: The same for users.
      warn_only: Anomaly kinds (`KINDS`) reported as warnings instead of errors.
    """

    max_dead_letter_fraction: float = 0.05
    max_unseen_category_fraction: float = 0.01
    event_drift_threshold: float = 0.1
    popularity_drift_threshold: float = 0.2
    gini_drift_threshold: float = 0.1
    max_new_item_fraction: float = 0.5
    max_new_user_fraction: float = 0.8
    warn_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = sorted(set(self.warn_only) - set(KINDS))
        if unknown:
            raise ValueError(f"validation.warn_only has unknown kinds {unknown}; use {list(KINDS)}")


class SevereAnomaliesError(RuntimeError):
    """Raised when validation found errors; the message is the `format_anomalies` report."""

    def __init__(self, anomalies: Sequence[Anomaly] | str) -> None:
        """Args:
        anomalies: The anomalies (the message is their report), or the report text itself.
        """
        is_report = isinstance(anomalies, str)
        super().__init__(anomalies if is_report else format_anomalies(anomalies))
        self.anomalies = [] if is_report else list(anomalies)


def _check_presence(
    found: Findings, split: str, name: str, schema: dict, stats: dict | None, num_examples: int
) -> None:
    presence = stats["num_present"] / num_examples if stats else 0.0
    required = schema["presence"]["min_fraction"]
    if presence < required:
        text = (
            f"is present in {presence:.1%} of {num_examples} examples but the schema requires "
            f"{required:.0%}; fix ExampleGen's output or regenerate the schema (SchemaGen)"
        )
        found.add(split, name, MISSING_FEATURE, text, value=presence, threshold=required)


def _check_values(found: Findings, split: str, name: str, schema: dict, stats: dict) -> None:
    for kind, count in stats["kinds"].items():
        if kind != schema["type"]:
            text = (
                f"has type {kind} in {count} of {stats['num_present']} examples but the schema "
                f"says {schema['type']}; fix ExampleGen's output or regenerate the schema"
            )
            found.add(split, name, TYPE_CHANGE, text, value=count / stats["num_present"])
    low, high = schema["value_count"]["min"], schema["value_count"]["max"]
    if stats["min_num_values"] < low or (high is not None and stats["max_num_values"] > high):
        text = (
            f"has {stats['min_num_values']}-{stats['max_num_values']} values per example, "
            f"outside the schema's {low}-{'' if high is None else high}; fix the data or "
            "widen the schema's value_count"
        )
        found.add(split, name, VALUE_COUNT, text)
    numeric, bounds = stats.get("numeric"), schema.get("range")
    if numeric and bounds and bounds["enforced"]:
        below = numeric["min"] < bounds["min"]
        if below or numeric["max"] > bounds["max"]:
            seen, allowed = (
                f"{format_number(r['min'])}, {format_number(r['max'])}" for r in (numeric, bounds)
            )
            text = (
                f"has values in [{seen}] outside the schema range [{allowed}]; fix the data, "
                "or widen schema.known_ranges or list it in schema.open_range_features"
            )
            end = "min" if below else "max"
            found.add(split, name, OUT_OF_RANGE, text, value=numeric[end], threshold=bounds[end])


def _check_domain(found: Findings, split: str, name: str, schema: dict, stats: dict) -> None:
    domain, strings = schema.get("string_domain"), stats.get("bytes")
    if domain is None or not strings or not strings["total_count"]:
        return
    unseen = [top for top in strings["top_values"] if top["value"] not in set(domain)]
    share = sum(top["count"] for top in unseen) / strings["total_count"]
    examples = ", ".join(repr(top["value"]) for top in unseen[:5])
    text = f"has {share:.1%} values outside the schema domain {domain} (unexpected: {examples})"
    key = "max_unseen_category_fraction"
    found.limit(split, name, UNSEEN_CATEGORY, text, share, key, below=WARNING)


def _check_split(found: Findings, split: str, stats: dict[str, Any], schema: dict) -> None:
    num_examples = stats["num_examples"]
    if not num_examples:
        if split in REQUIRED_SPLITS:
            text = (
                "has no examples; check ExampleGen's input and its split settings "
                "(ingest.eval_days, ingest.split_timestamp)"
            )
            found.add(split, None, EMPTY_SPLIT, text, value=0)
        return
    fallback = schema["splits"].get("train") if split in ("eval", "test") else None
    split_schema = schema["splits"].get(split, fallback)
    if split_schema is None:
        text = "has no schema; regenerate the schema (SchemaGen)"
        found.add(split, None, MISSING_SPLIT, text, WARNING)
        return
    for name, feature_schema in split_schema["features"].items():
        feature_stats = stats["features"].get(name)
        _check_presence(found, split, name, feature_schema, feature_stats, num_examples)
        if feature_stats:
            _check_values(found, split, name, feature_schema, feature_stats)
            _check_domain(found, split, name, feature_schema, feature_stats)
    for name in sorted(set(stats["features"]) - set(split_schema["features"])):
        text = "is not in the schema; regenerate the schema (SchemaGen) if it is intended"
        found.add(split, name, UNEXPECTED_FEATURE, text, WARNING)


def _check_dead_letters(found: Findings, ingest: dict[str, Any]) -> None:
    sources = (
        (F.STAT_DEAD_LETTERS, F.STAT_ROWS_WRITTEN, "interaction rows"),
        (F.STAT_CATALOG_DEAD_LETTERS, F.STAT_CATALOG_ITEMS, "catalog rows"),
        (F.STAT_USER_DEAD_LETTERS, F.STAT_USER_ROWS, "users rows"),
    )
    for key, written_key, what in sources:
        dead = ingest.get(key) or 0
        # Interactions also lose exact duplicates, so their total is the rows read.
        total = ingest.get(F.STAT_ROWS_IN) if key == F.STAT_DEAD_LETTERS else None
        total = total or dead + (ingest.get(written_key) or 0)
        if total:
            text = (
                f"{dead} of {total} {what} ({dead / total:.1%}) went to dead letters "
                "(dead_letters-*.jsonl give the reasons)"
            )
            found.limit(INGEST, key, DEAD_LETTERS, text, dead / total, "max_dead_letter_fraction")


def validate(
    statistics: dict[str, Any],
    schema: dict[str, Any],
    config: ValidationConfig,
    baseline_statistics: dict[str, Any] | None = None,
    data_dir: str | None = None,
    baseline_data_dir: str | None = None,
) -> list[Anomaly]:
    """Checks statistics against a schema, ingest's counts and, optionally, a baseline.

    Args:
      statistics: `pipeline.statistics.compute_statistics` output of the new data.
      schema: `pipeline.schema.infer_schema` output (or a curated schema).
      config: Thresholds.
      baseline_statistics: Statistics of the baseline run; enables the drift checks.
      data_dir: Ingested data directory of the new data; with `baseline_data_dir`, enables
        the new-user and new-item checks (from the two runs' vocabularies).
      baseline_data_dir: Ingested data directory of the baseline run.

    Returns:
      The anomalies, errors first, then warnings, then info.

    Raises:
      FileNotFoundError: a vocabulary file is missing.
    """
    found = Findings(config)
    _check_dead_letters(found, statistics.get(INGEST, {}))
    for split, split_stats in statistics["splits"].items():
        _check_split(found, split, split_stats, schema)
    for split in sorted(set(schema["splits"]) - set(statistics["splits"])):
        text = "is in the schema but has no files; check ExampleGen's inputs (the users table?)"
        found.add(split, None, MISSING_SPLIT, text, WARNING)
    if baseline_statistics is not None:
        check_drift(found, statistics, baseline_statistics)
    if data_dir and baseline_data_dir:
        check_new_ids(found, data_dir, baseline_data_dir)
    return sorted(found.anomalies, key=lambda a: SEVERITIES.index(a.severity))


def is_severe(anomalies: Sequence[Anomaly]) -> bool:
    """True when any anomaly is an error."""
    return any(a.severity == ERROR for a in anomalies)


def write_anomalies(anomalies: Sequence[Anomaly], path: str) -> None:
    """Writes `{"summary": {"counts": {severity: n}, "severe": bool}, "anomalies": [Anomaly
    fields, ...]}` as JSON at `path` (local or `gs://`), atomically."""
    counts = {s: sum(a.severity == s for a in anomalies) for s in SEVERITIES}
    summary = {"counts": counts, "severe": is_severe(anomalies)}
    write_json(path, {"summary": summary, "anomalies": [dataclasses.asdict(a) for a in anomalies]})


def format_anomalies(anomalies: Sequence[Anomaly]) -> str:
    """Returns a readable report: a count line, then one line per anomaly, errors first."""
    if not anomalies:
        return "ExampleValidator: no anomalies\n"
    counts = ", ".join(f"{sum(a.severity == s for a in anomalies)} {s}" for s in SEVERITIES)
    ordered = sorted(anomalies, key=lambda a: SEVERITIES.index(a.severity))
    lines = [f"ExampleValidator: {counts}"]
    lines += [f"  {a.severity.upper():<7} [{a.kind}] {a.description}" for a in ordered]
    return "\n".join(lines) + "\n"
