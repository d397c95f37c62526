"""Validation of single raw fields, shared by the interaction and catalog parsers.

Each function takes the decoded record of one input row (a JSON object, CSV row or Parquet row)
and returns the field's value in the form the feature contract stores, or raises `FieldError`
whose message is the dead-letter reason: it names the field, quotes the bad value and says what
is accepted.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from recstack import features

#: Latest accepted timestamp (9999-12-31T23:59:59Z); larger values are usually milliseconds.
MAX_TIMESTAMP = 253402300799
#: Largest finite float32; the contract stores `value` as float32.
FLOAT32_MAX = 3.4028234663852886e38
#: Characters an id may not contain: the vocabulary files are tab-separated, one id per line.
ID_FORBIDDEN_CHARS = ("\t", "\n", "\r")

_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class FieldError(ValueError):
    """A field violates the data contract; the message is a readable dead-letter reason."""


def json_type_name(value: Any) -> str:
    """Returns the JSON name of `value`'s type ("object", "array", "string", ...)."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def parse_id(record: dict[str, Any], name: str) -> str:
    """Returns the id field `name` as a non-empty string; JSON integers become their digits.

    Raises:
      FieldError: missing, null, empty, not a string or integer, or holding a tab or newline.
    """
    if name not in record or record[name] is None:
        raise FieldError(f"missing {name}")
    value = record[name]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise FieldError(
            f"{name} must be a string or an integer, got {json_type_name(value)} {value!r}"
        )
    if not value.strip():
        raise FieldError(f"empty {name} {value!r}")
    if any(char in value for char in ID_FORBIDDEN_CHARS):
        raise FieldError(
            f"{name} {value!r} contains a tab or line break, which the tab-separated vocabulary "
            "files cannot hold; remove it from the id"
        )
    return value


def parse_number(record: dict[str, Any], name: str) -> float:
    """Returns the numeric field `name` (a JSON number or numeric string) as a finite float.

    Raises:
      FieldError: missing, not numeric, NaN or infinite.
    """
    if name not in record or record[name] is None:
        raise FieldError(f"missing {name}")
    value = record[name]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FieldError(f"{name} must be a number, got {json_type_name(value)} {value!r}")
    try:
        number = float(value)
    except OverflowError:
        raise FieldError(f"{name} {value!r} is too large for a floating-point number") from None
    except ValueError:
        raise FieldError(f"{name} must be a number, got string {value!r}") from None
    if not math.isfinite(number):
        raise FieldError(f"{name} must be a finite number, got {value!r}")
    return number


def parse_timestamp(record: dict[str, Any]) -> int:
    """Returns the timestamp as integer epoch seconds (fractions are floored).

    Accepts epoch seconds as a JSON number or numeric string, an ISO-8601 string such as
    "2023-11-14T22:13:20Z", or a `datetime.datetime` (a Parquet timestamp column); a date-time
    without an offset is read as UTC.

    Raises:
      FieldError: missing, unparseable, or outside 1970-01-01 .. 9999-12-31.
    """
    name = features.TIMESTAMP
    value = record.get(name)
    if isinstance(value, datetime.datetime):
        seconds = _datetime_to_epoch(value)
    elif isinstance(value, str) and not _is_numeric(value):
        seconds = _iso_to_epoch(value)
    else:
        try:
            seconds = parse_number(record, name)
        except FieldError as e:
            raise FieldError(f"{e}; use epoch seconds or an ISO-8601 string") from None
    if seconds < 0:
        raise FieldError(f"{name} {value!r} is before 1970-01-01; use epoch seconds")
    if seconds > MAX_TIMESTAMP:
        raise FieldError(
            f"{name} {value!r} is after 9999-12-31 in epoch seconds; if it is in milliseconds, "
            "divide by 1000"
        )
    return math.floor(seconds)


def parse_value(record: dict[str, Any]) -> float:
    """Returns the optional `value` field as a finite float32-range number; absent or null is 0.0.

    Raises:
      FieldError: present but not numeric, NaN, infinite or beyond the float32 range.
    """
    name = features.VALUE
    if record.get(name) is None:
        return 0.0
    number = parse_number(record, name)
    if abs(number) > FLOAT32_MAX:
        raise FieldError(f"{name} {record[name]!r} is beyond the float32 range (+-3.4e38)")
    return number


def parse_nonempty_string(record: dict[str, Any], name: str) -> str:
    """Returns the required string field `name`, which must not be empty or blank.

    Raises:
      FieldError: missing, null, not a string, or blank.
    """
    if name not in record or record[name] is None:
        raise FieldError(f"missing {name}")
    value = record[name]
    if not isinstance(value, str):
        raise FieldError(f"{name} must be a string, got {json_type_name(value)} {value!r}")
    if not value.strip():
        raise FieldError(f"empty {name} {value!r}")
    return value


def parse_optional_string(record: dict[str, Any], name: str) -> str:
    """Returns the optional string field `name`; absent or null is "".

    Raises:
      FieldError: present but not a string.
    """
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise FieldError(f"{name} must be a string, got {json_type_name(value)} {value!r}")
    return value


def parse_categories(record: dict[str, Any]) -> list[str]:
    """Returns the categories as a list of non-empty, stripped strings; absent or null is [].

    Accepts a JSON array of strings or one string joined with `features.CATEGORY_SEPARATOR`
    ("jazz|blues"). Blank entries are dropped in both forms so that the two agree.

    Raises:
      FieldError: neither an array nor a string, or an array holding a non-string.
    """
    name = features.CATEGORIES
    value = record.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        parts = value.split(features.CATEGORY_SEPARATOR)
    elif isinstance(value, list):
        for part in value:
            if not isinstance(part, str):
                raise FieldError(
                    f"{name} must hold only strings, got {json_type_name(part)} {part!r} in "
                    f"{value!r}"
                )
        parts = value
    else:
        raise FieldError(
            f"{name} must be an array of strings or a {features.CATEGORY_SEPARATOR!r}-joined "
            f"string, got {json_type_name(value)} {value!r}"
        )
    return [part.strip() for part in parts if part.strip()]


def _is_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _iso_to_epoch(text: str) -> float:
    try:
        moment = datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        raise FieldError(
            f"{features.TIMESTAMP} {text!r} is neither epoch seconds nor an ISO-8601 date-time "
            "(e.g. 2023-11-14T22:13:20Z)"
        ) from None
    return _datetime_to_epoch(moment)


def _datetime_to_epoch(moment: datetime.datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def parse_attribute(record: dict[str, Any], name: str) -> str:
    """Returns the user attribute `name` as a categorical string; absent or null is "".

    Strings are stripped; integers and booleans become their text ("42", "true"); finite
    floats their shortest text ("1.5").

    Raises:
      FieldError: a non-finite number, or a list or object.
    """
    value = record.get(name)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldError(f"{name} must be finite, got {value!r}")
        return repr(value)
    raise FieldError(
        f"{name} must be a string, number or boolean, got {json_type_name(value)} {value!r}"
    )
