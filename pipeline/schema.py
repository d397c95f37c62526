"""SchemaGen: the expected shape of every split's features, inferred from statistics.

A schema (a JSON dict, one per split) records for each feature its type, whether it must be
present, how many values an example holds, the numeric range and, for low-cardinality strings
(event, country, age_band), the set of allowed values. `pipeline.validation` checks new
statistics against it. Ids and free text never get a value set: new users, items and titles
are the normal state of a recommender's data, not an anomaly.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from recstack import features as F
from recstack.fs import read_json, write_json

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class SchemaConfig:
    """How a schema is inferred from statistics.

    Attributes:
      max_domain_size: String features with at most this many distinct values in a split get
        a string domain (their sorted values); larger ones are treated as free-form.
      open_range_features: Numeric features whose range is recorded but not enforced, because
        new data legitimately moves it (time stamps grow, dwell times and ratings vary).
      no_domain_features: String features never given a domain (ids, free text, catalog
        categories, which a catalog extends routinely), whatever their cardinality.
      known_ranges: `(feature, min, max)` triples used instead of the observed range, for
        features whose bounds are known a priori (a small sample may not show every hour).
      capped_list_features: List features whose length the producer caps (ingest's
        history_length), so the observed maximum length is enforced. Other lists of varying
        length get no maximum, and every list of varying length gets minimum 0 (a user's
        first event has an empty history); fixed-length features must keep their length.
      min_presence: Share of a split's examples a feature must be present in to be required
        (schema `min_fraction` 1.0); rarer features are optional (`min_fraction` 0.0).
    """

    max_domain_size: int = 50
    open_range_features: tuple[str, ...] = (F.TIMESTAMP, F.HISTORY_TIMESTAMPS, F.VALUE)
    no_domain_features: tuple[str, ...] = (
        F.USER_ID, F.ITEM_ID, F.HISTORY_ITEM_IDS, F.TITLE, F.DESCRIPTION, F.CATEGORIES,
    )  # fmt: skip
    known_ranges: tuple[tuple[str, float, float], ...] = ((F.HOUR, 0, 23), (F.WEEKDAY, 0, 6))
    capped_list_features: tuple[str, ...] = (F.HISTORY_ITEM_IDS, F.HISTORY_TIMESTAMPS)
    min_presence: float = 1.0

    def __post_init__(self) -> None:
        if self.max_domain_size < 0:
            raise ValueError(f"schema.max_domain_size={self.max_domain_size} must be >= 0")
        if not 0.0 < self.min_presence <= 1.0:
            raise ValueError(f"schema.min_presence={self.min_presence} must be in (0, 1]")
        ranges = tuple(tuple(r) for r in self.known_ranges)  # YAML gives lists.
        for entry in ranges:
            if len(entry) != 3 or not entry[1] <= entry[2]:
                raise ValueError(
                    f"schema.known_ranges entry {list(entry)} must be [feature, min, max] "
                    "with min <= max"
                )
        object.__setattr__(self, "known_ranges", ranges)


def _value_count(name: str, stats: dict[str, Any], config: SchemaConfig) -> dict[str, Any]:
    low, high = stats["min_num_values"], stats["max_num_values"]
    if low == high:
        return {"min": low, "max": high}
    return {"min": 0, "max": high if name in config.capped_list_features else None}


def _feature_schema(
    name: str, stats: dict[str, Any], num_examples: int, config: SchemaConfig
) -> dict[str, Any]:
    """Returns the schema of one feature from its statistics."""
    required = stats["num_present"] >= config.min_presence * num_examples
    schema: dict[str, Any] = {
        "type": stats["kind"],
        "presence": {"required": required, "min_fraction": 1.0 if required else 0.0},
        "value_count": _value_count(name, stats, config),
    }
    known = {entry[0]: entry[1:] for entry in config.known_ranges}
    numeric = stats.get("numeric")
    if numeric and name in known:
        schema["range"] = {"min": known[name][0], "max": known[name][1], "enforced": True}
    elif numeric:
        enforced = name not in config.open_range_features
        schema["range"] = {"min": numeric["min"], "max": numeric["max"], "enforced": enforced}
    strings = stats.get("bytes")
    if (
        strings
        and name not in config.no_domain_features
        and strings["num_unique"] <= config.max_domain_size
        and len(strings["top_values"]) == strings["num_unique"]
    ):
        schema["string_domain"] = sorted(top["value"] for top in strings["top_values"])
    return schema


def infer_schema(statistics: dict[str, Any], config: SchemaConfig) -> dict[str, Any]:
    """Infers a schema from `pipeline.statistics.compute_statistics` output.

    Splits without examples get no schema (validation then uses train's for eval and test).

    Args:
      statistics: The statistics dict (or statistics.json).
      config: Inference settings.

    Returns:
      `{"version": 1, "splits": {split: {"features": {name: {"type": "bytes"|"int"|"float",
      "presence": {"required", "min_fraction"}, "value_count": {"min", "max" (None: no limit)},
      "range": {"min", "max", "enforced"} (numeric only), "string_domain": [sorted values]
      (low-cardinality strings only)}}}}}`, JSON-serialisable.
    """
    splits = {}
    for split, split_stats in statistics["splits"].items():
        num_examples = split_stats["num_examples"]
        if num_examples:
            splits[split] = {
                "features": {
                    name: _feature_schema(name, stats, num_examples, config)
                    for name, stats in sorted(split_stats["features"].items())
                }
            }
    return {"version": SCHEMA_VERSION, "splits": splits}


def write_schema(schema: dict[str, Any], path: str) -> None:
    """Writes `schema` as JSON at `path` (local or `gs://`), atomically."""
    write_json(path, schema)


def read_schema(path: str) -> dict[str, Any]:
    """Reads a schema written by `write_schema`.

    Raises:
      FileNotFoundError: `path` does not exist.
      ValueError: the file is not a schema of `SCHEMA_VERSION`.
    """
    schema = read_json(path)
    if not isinstance(schema, dict) or schema.get("version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path} is not a version-{SCHEMA_VERSION} schema; regenerate it with "
            "pipeline.schema.infer_schema"
        )
    return schema


def format_number(value: float) -> str:
    """Integers in full (time stamps stay readable), other numbers with 6 significant digits."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def _domain_text(feature: dict[str, Any]) -> str:
    if "string_domain" in feature:
        values = feature["string_domain"]
        return "{" + ", ".join(values[:8]) + (", ..." if len(values) > 8 else "") + "}"
    if "range" in feature:
        r = feature["range"]
        bounds = f"[{format_number(r['min'])}, {format_number(r['max'])}]"
        return bounds + ("" if r["enforced"] else " (not enforced)")
    return ""


def format_schema(schema: dict[str, Any]) -> str:
    """Returns the schema as readable text, one table per split."""
    lines = []
    for split, split_schema in schema["splits"].items():
        lines.append(f"{split}:")
        lines.append(f"  {'feature':<20} {'type':<6} {'presence':<9} {'values':<7} domain")
        for name, feature in split_schema["features"].items():
            presence = "required" if feature["presence"]["required"] else "optional"
            count = feature["value_count"]
            values = str(count["min"]) if count["min"] == count["max"] else (
                f"{count['min']}+" if count["max"] is None else f"{count['min']}-{count['max']}"
            )  # fmt: skip
            lines.append(
                f"  {name:<20} {feature['type']:<6} {presence:<9} {values:<7} "
                f"{_domain_text(feature)}".rstrip()
            )
    return "\n".join(lines) + "\n"
