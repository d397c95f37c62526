"""Tests of the per-field validation rules."""

import datetime

import pytest

from beam_jobs import fields
from recstack import features

TS = features.TIMESTAMP


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1700000000, 1700000000),
        (1700000000.9, 1700000000),
        ("1700000000", 1700000000),
        (" 1700000000.5 ", 1700000000),
        ("2023-11-14T22:13:20Z", 1700000000),
        ("2023-11-14T22:13:20", 1700000000),
        ("2023-11-14T23:13:20+01:00", 1700000000),
        ("2023-11-14 22:13:20.750", 1700000000),
        (0, 0),
    ],
)
def test_timestamps_become_epoch_seconds(value, expected):
    assert fields.parse_timestamp({TS: value}) == expected


def test_iso_dates_are_utc_independently_of_local_time():
    expected = int(datetime.datetime(2024, 2, 29, tzinfo=datetime.UTC).timestamp())
    assert fields.parse_timestamp({TS: "2024-02-29"}) == expected


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({}, "missing timestamp"),
        ({TS: None}, "missing timestamp"),
        ({TS: "yesterday"}, "'yesterday' is neither epoch seconds nor an ISO-8601"),
        ({TS: "nan"}, "timestamp must be a finite number, got 'nan'"),
        ({TS: float("inf")}, "finite number"),
        ({TS: True}, "timestamp must be a number, got boolean True"),
        ({TS: [1]}, "got array [1]"),
        ({TS: -5}, "timestamp -5 is before 1970"),
        ({TS: 1700000000000}, "divide by 1000"),
    ],
)
def test_bad_timestamps_are_rejected_with_the_value(record, reason):
    with pytest.raises(fields.FieldError) as e:
        fields.parse_timestamp(record)
    assert reason in str(e.value)


def test_ids_accept_strings_and_integers():
    assert fields.parse_id({"user_id": "u1"}, "user_id") == "u1"
    assert fields.parse_id({"user_id": 42}, "user_id") == "42"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty user_id ''"),
        ("  ", "empty user_id '  '"),
        (None, "missing user_id"),
        (1.5, "user_id must be a string or an integer, got number 1.5"),
        (False, "got boolean False"),
        ("a\tb", "contains a tab or line break"),
    ],
)
def test_bad_ids_are_rejected(value, reason):
    with pytest.raises(fields.FieldError) as e:
        fields.parse_id({"user_id": value}, "user_id")
    assert reason in str(e.value)


def test_missing_id_is_rejected():
    with pytest.raises(fields.FieldError, match="missing item_id"):
        fields.parse_id({}, "item_id")


@pytest.mark.parametrize(
    ("record", "expected"),
    [({}, 0.0), ({"value": None}, 0.0), ({"value": 2}, 2.0), ({"value": "-1.5"}, -1.5)],
)
def test_value_is_optional_and_numeric(record, expected):
    assert fields.parse_value(record) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "value must be a number, got string 'abc'"),
        (float("nan"), "value must be a finite number"),
        ("inf", "value must be a finite number, got 'inf'"),
        (1e39, "beyond the float32 range"),
        (10**400, "too large for a floating-point number"),
        ({"x": 1}, "got object"),
    ],
)
def test_bad_values_are_rejected(value, reason):
    with pytest.raises(fields.FieldError) as e:
        fields.parse_value({"value": value})
    assert reason in str(e.value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["jazz", "blues"], ["jazz", "blues"]),
        ("jazz|blues", ["jazz", "blues"]),
        (" jazz | | blues ", ["jazz", "blues"]),
        ("", []),
        (None, []),
        ([], []),
    ],
)
def test_categories_accept_lists_and_joined_strings(value, expected):
    assert fields.parse_categories({"categories": value}) == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [(["jazz", 3], "must hold only strings, got number 3"), (7, "got number 7")],
)
def test_bad_categories_are_rejected(value, reason):
    with pytest.raises(fields.FieldError) as e:
        fields.parse_categories({"categories": value})
    assert reason in str(e.value)


def test_optional_strings_default_to_empty_and_reject_other_types():
    assert fields.parse_optional_string({}, "title") == ""
    assert fields.parse_optional_string({"title": "T"}, "title") == "T"
    with pytest.raises(fields.FieldError, match="title must be a string, got number 5"):
        fields.parse_optional_string({"title": 5}, "title")


def test_required_strings_reject_blank():
    assert fields.parse_nonempty_string({"event": "click"}, "event") == "click"
    with pytest.raises(fields.FieldError, match="empty event"):
        fields.parse_nonempty_string({"event": " "}, "event")
    with pytest.raises(fields.FieldError, match="missing event"):
        fields.parse_nonempty_string({}, "event")


def test_datetimes_from_parquet_become_epoch_seconds():
    aware = datetime.datetime(
        2023, 11, 14, 23, 13, 20, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
    )
    naive = datetime.datetime(2023, 11, 14, 22, 13, 20)
    assert fields.parse_timestamp({TS: aware}) == 1700000000
    assert fields.parse_timestamp({TS: naive}) == 1700000000
