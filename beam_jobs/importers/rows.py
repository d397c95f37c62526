"""Building contract rows from source values, and the `Rejected` error for rows that fail.

Every importer converts source fields with these functions so that all layouts produce the same
row shape (the keys of `recstack.features.INTERACTION_FEATURES` and `ITEM_FEATURES`) and reject
bad values with the same reason codes.
"""

from __future__ import annotations

import math
from typing import Any

from beam_jobs.fields import ID_FORBIDDEN_CHARS
from recstack import features

#: The `event` of every explicit rating (MovieLens ratings, Amazon review stars).
EVENT_RATING = "rating"
#: Latest accepted timestamp (9999-12-31T23:59:59Z in epoch seconds), as in ingestion.
MAX_EPOCH_SECONDS = 253402300799

#: Reason codes of rejected rows (keys of the summary's "rejects").
REASON_BAD_ENCODING = "bad_encoding"
REASON_FIELD_COUNT = "wrong_field_count"
REASON_BAD_CSV = "bad_csv"
REASON_BAD_JSON = "bad_json"
REASON_MISSING_FIELD = "missing_field"
REASON_BAD_ID = "bad_id"
REASON_BAD_RATING = "bad_rating"
REASON_BAD_TIMESTAMP = "bad_timestamp"
REASON_BAD_GENRES = "bad_genres"
REASON_BAD_TEXT = "bad_text"
REASON_BAD_CATEGORIES = "bad_categories"


class Rejected(ValueError):
    """A source row the importer cannot convert.

    Attributes:
      reason: Short stable code the summary counts by, e.g. `REASON_BAD_TIMESTAMP`.
      detail: Readable message naming the bad value and what was expected.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def source_id(value: Any, name: str) -> str:
    """Returns a source id unchanged as a string (JSON integers become their digits).

    Args:
      value: The id as read; str, or int from JSON.
      name: Source field name, for the message (e.g. "movieId").

    Raises:
      Rejected: missing, empty, not a string or integer, or holding a tab or line break (the
        vocabulary files are tab-separated).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None:
        raise Rejected(REASON_MISSING_FIELD, f"missing {name}")
    if not isinstance(value, str) or not value.strip():
        raise Rejected(REASON_BAD_ID, f"{name} must be a non-empty string, got {value!r}")
    if any(char in value for char in ID_FORBIDDEN_CHARS):
        raise Rejected(REASON_BAD_ID, f"{name} {value!r} contains a tab or line break")
    return value


def rating(value: Any, name: str) -> float:
    """Returns a rating (number or numeric string) as a finite float.

    Raises:
      Rejected: missing, not numeric, NaN or infinite.
    """
    if value is None:
        raise Rejected(REASON_MISSING_FIELD, f"missing {name}")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise Rejected(REASON_BAD_RATING, f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise Rejected(REASON_BAD_RATING, f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise Rejected(REASON_BAD_RATING, f"{name} must be a finite number, got {value!r}")
    return number


def epoch_seconds(value: Any, name: str, per_second: int = 1) -> int:
    """Returns a non-negative integer timestamp converted to epoch seconds.

    Args:
      value: Integer (JSON) or string of digits.
      name: Source field name, for the message.
      per_second: Units per second of `value`: 1 for seconds, 1000 for milliseconds (floored).

    Raises:
      Rejected: missing, not a non-negative integer, or after 9999-12-31.
    """
    if value is None:
        raise Rejected(REASON_MISSING_FIELD, f"missing {name}")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Rejected(
            REASON_BAD_TIMESTAMP, f"{name} must be a non-negative integer, got {value!r}"
        )
    seconds = value // per_second
    if seconds > MAX_EPOCH_SECONDS:
        unit = "seconds" if per_second == 1 else f"1/{per_second} seconds"
        raise Rejected(REASON_BAD_TIMESTAMP, f"{name} {value!r} in {unit} is after 9999-12-31")
    return seconds


def interaction_row(user_id: str, item_id: str, timestamp: int, value: float) -> dict[str, Any]:
    """Returns one interaction of the contract: a rating of `item_id` by `user_id`."""
    return {
        features.USER_ID: user_id,
        features.ITEM_ID: item_id,
        features.TIMESTAMP: timestamp,
        features.EVENT: EVENT_RATING,
        features.VALUE: value,
    }


def item_row(item_id: str, title: str, description: str, categories: list[str]) -> dict[str, Any]:
    """Returns one catalog item of the contract."""
    return {
        features.ITEM_ID: item_id,
        features.TITLE: title,
        features.DESCRIPTION: description,
        features.CATEGORIES: categories,
    }
