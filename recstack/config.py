"""Loading frozen config dataclasses from the YAML files in `tfx_config/`.

A config file is a mapping of section names (`generate`, `ingest`, `train`, `export`, `serve`)
to mappings of field values. Each stage owns a frozen dataclass; `load_section` builds it from
one section and rejects unknown keys, so a typo in YAML fails loudly instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

#: The configuration used by `make demo` and by the CLI when `--config` is not given.
DEFAULT_CONFIG = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tfx_config", "demo.yaml"
)


def read_yaml(path: str) -> dict[str, Any]:
    """Reads a YAML mapping; raises ValueError naming the file when it is not a mapping."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of sections, got {type(data).__name__}")
    return data


def from_dict(cls: type[T], values: dict[str, Any], where: str = "") -> T:
    """Builds dataclass `cls` from `values`, rejecting keys that are not fields.

    Tuple-typed fields accept YAML lists; a field whose type is itself a dataclass accepts a
    mapping (a nested section), built the same way.

    Raises:
      ValueError: a key is not a field of `cls` (the message lists the valid ones).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    where = where or cls.__name__
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        kind = hints.get(key)
        # A dataclass with its own `from_dict` (e.g. a column mapping) parses its dict itself.
        if (
            isinstance(value, dict)
            and dataclasses.is_dataclass(kind)
            and not hasattr(kind, "from_dict")
        ):
            value = from_dict(kind, value, where=f"{where}.{key}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[key] = value
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """JSON/YAML-ready form of a config dataclass (nested ones too; tuples become lists);
    `from_dict(type(config), to_dict(config))` rebuilds it."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and hasattr(value, "as_dict"):
            return plain(value.as_dict())  # The inverse of its own `from_dict`.
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(config)


def parse_assignments(assignments: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`["a.b=1", "c=[2, 3]"]` -> `{"a": {"b": 1}, "c": [2, 3]}`: dotted keys address nested
    sections; each value is parsed as YAML (numbers, booleans, lists), so `--set` flags write
    what a YAML file would.

    Raises:
      ValueError: an assignment has no `=` or an empty key part.
    """
    result: dict[str, Any] = {}
    for assignment in assignments:
        key, equals, text = assignment.partition("=")
        parts = key.strip().split(".")
        if not equals or not all(parts):
            raise ValueError(f"--set {assignment!r}: expected KEY=VALUE, e.g. text.mode=frozen")
        target = result
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ValueError(f"--set {assignment!r}: {part} was set to a value before")
        target[parts[-1]] = yaml.safe_load(text)
    return result


def merge(base: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """`base` with `updates` applied, nested mappings merged key by key (neither is changed)."""
    merged = dict(base)
    for key, value in updates.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            value = merge(merged[key], value)
        merged[key] = value
    return merged


def load_section(
    path: str | None,
    section: str,
    cls: type[T],
    assignments: list[str] | tuple[str, ...] = (),
    **overrides: Any,
) -> T:
    """Returns `cls` built from `section` of the YAML file at `path`, then `assignments`, then
    `overrides`.

    Args:
      path: YAML file; None uses `DEFAULT_CONFIG`.
      section: Top-level key; a missing section gives the dataclass defaults.
      cls: Frozen dataclass type.
      assignments: `KEY=VALUE` strings (`parse_assignments`, dotted keys for nested sections)
        that win over the file, as given by a CLI's repeated `--set`.
      **overrides: Field values that win over both (None values are ignored, so unset CLI
        flags fall through to the file).
    """
    path = path or DEFAULT_CONFIG
    values = merge(dict(read_yaml(path).get(section) or {}), parse_assignments(assignments))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, values, where=f"{path} [{section}]")
