"""Tests of the format readers: same rows from every format, located dead letters, bad files."""

import csv
import datetime
import gzip
import io
import json

import apache_beam as beam
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs import dead_letters, fields
from beam_jobs.columns import CONTRACT_COLUMNS, ColumnMapping
from beam_jobs.parse import LINE_KEY, ParseCatalog, ParseInteractions
from beam_jobs.readers import ReadRecords, SourceRecord, resolve_format
from recstack import features

ITEMS = [
    {
        "item_id": "i1",
        "title": "Kind of Blue",
        "description": "Modal, cool.",
        "categories": ["jazz"],
    },
    {"item_id": "i2", "title": 'Say "hi"', "description": "Two\nlines", "categories": ["a", "b"]},
    {"item_id": "i3", "title": None, "description": None, "categories": []},
]
EXPECTED_ITEMS = [
    {
        "item_id": "i1",
        "title": "Kind of Blue",
        "description": "Modal, cool.",
        "categories": ["jazz"],
    },
    {"item_id": "i2", "title": 'Say "hi"', "description": "Two\nlines", "categories": ["a", "b"]},
    {"item_id": "i3", "title": "", "description": "", "categories": []},
]
INTERACTIONS = [
    {"user_id": "u1", "item_id": "i1", "timestamp": 1700000000, "event": "click", "value": 1.5},
    {"user_id": "u2", "item_id": "i2", "timestamp": 1700000100, "event": "view", "value": None},
]
EXPECTED_INTERACTIONS = [
    {"user_id": "u1", "item_id": "i1", "timestamp": 1700000000, "event": "click", "value": 1.5},
    {"user_id": "u2", "item_id": "i2", "timestamp": 1700000100, "event": "view", "value": 0.0},
]


def _jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")


def _csv(records):
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(list(records[0]))
    for record in records:
        writer.writerow(
            [
                features.CATEGORY_SEPARATOR.join(v)
                if isinstance(v, list)
                else ("" if v is None else v)
                for v in record.values()
            ]
        )
    return out.getvalue().encode("utf-8")


def _parquet(records):
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(records), out)
    return out.getvalue()


ENCODERS = {"jsonl": _jsonl, "csv": _csv, "parquet": _parquet}


def _write(tmp_path, name, records, fmt, compress):
    data = ENCODERS[fmt](records)
    path = tmp_path / (f"{name}.{fmt}.gz" if compress else f"{name}.{fmt}")
    path.write_bytes(gzip.compress(data) if compress else data)
    return str(path)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_every_format_gives_the_same_rows(tmp_path, fmt, compress):
    items = _write(tmp_path, "items", ITEMS, fmt, compress)
    logs = _write(tmp_path, "logs", INTERACTIONS, fmt, compress)
    with test_pipeline.TestPipeline() as p:
        catalog = p | "Items" >> ParseCatalog(items, input_format="auto")
        interactions = p | "Logs" >> ParseInteractions(logs, input_format=fmt)
        item_rows = catalog.rows | "ItemRows" >> beam.Map(lambda s: s.row)
        log_rows = interactions.rows | "LogRows" >> beam.FlatMap(lambda b: [s.row for s in b])
        assert_that(item_rows, equal_to(EXPECTED_ITEMS), label="Items")
        assert_that(log_rows, equal_to(EXPECTED_INTERACTIONS), label="Interactions")
        assert_that(catalog.dead_letters, equal_to([]), label="NoItemLetters")


def test_csv_records_keep_quoted_commas_newlines_and_their_first_line(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text(
        'item_id,title,categories\n\ni1,"Hello, world",a|b\ni2,"two\nlines ""q""",\n',
        encoding="utf-8",
    )
    with test_pipeline.TestPipeline() as p:
        records = p | ReadRecords(str(path), "csv", dead_letters.SOURCE_CATALOG)
        expected = [
            SourceRecord(
                str(path),
                3,
                'i1,"Hello, world",a|b',
                {"item_id": "i1", "title": "Hello, world", "categories": "a|b"},
            ),
            SourceRecord(
                str(path),
                4,
                'i2,"two\nlines ""q""",',
                {"item_id": "i2", "title": 'two\nlines "q"', "categories": None},
            ),
        ]
        assert_that(records, equal_to(expected))


def _letter(source, file, line, raw, reason):
    return {"source": source, "file": file, LINE_KEY: line, "raw": raw, "reason": reason}


def test_csv_dead_letters_carry_file_line_raw_and_reason(tmp_path):
    path = tmp_path / "logs.csv"
    path.write_bytes(
        b"user_id,item_id,timestamp,event\r\n"
        b"u1,i1,1700000000,click\r\n"
        b"u1,i1\r\n"
        b'u2,"i\r\n2",1700000000,\r\n'
        b"u3,i\xff,1700000000,view\r\n"
        b'u4,i4,"17"00,view\r\n'
    )
    src, file = dead_letters.SOURCE_INTERACTIONS, str(path)
    with test_pipeline.TestPipeline() as p:
        result = p | ParseInteractions(file, input_format="csv")
        expected = [
            _letter(
                src,
                file,
                3,
                "u1,i1",
                "invalid CSV: the record has 2 fields but the header has 4 "
                "(user_id, item_id, timestamp, event)",
            ),
            _letter(
                src,
                file,
                4,
                'u2,"i\r\n2",1700000000,',
                "item_id 'i\\r\\n2' contains a tab or line break, which the tab-separated "
                "vocabulary files cannot hold; remove it from the id",
            ),
            _letter(
                src,
                file,
                6,
                "u3,i\ufffd,1700000000,view",
                "line is not UTF-8 (invalid start byte at byte 4)",
            ),
            _letter(src, file, 7, 'u4,i4,"17"00,view', "invalid CSV: ',' expected after '\"'"),
        ]
        assert_that(result.dead_letters, equal_to(expected), label="DeadLetters")
        assert_that(result.lines | beam.CombineGlobally(sum), equal_to([5]), label="RowsRead")


def test_parquet_dead_letters_carry_the_row_number_and_a_json_rendering(tmp_path):
    path = str(tmp_path / "items.parquet")
    records = [
        {"item_id": "i1", "categories": ["x"], "year": 1999},
        {"item_id": None, "categories": ["y", "z"], "year": 2001},
    ]
    pq.write_table(pa.Table.from_pylist(records), path, row_group_size=1)
    with test_pipeline.TestPipeline() as p:
        result = p | ParseCatalog(path, input_format="parquet")
        raw = '{"item_id": null, "categories": ["y", "z"], "year": 2001}'
        expected = _letter(dead_letters.SOURCE_CATALOG, path, 2, raw, "missing item_id")
        assert_that(result.dead_letters, equal_to([expected]), label="DeadLetters")
        assert_that(result.rows | beam.Map(lambda s: s.line), equal_to([1]), label="Lines")


def test_parquet_timestamp_columns_and_column_mapping(tmp_path):
    path = str(tmp_path / "ratings.parquet")
    moment = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC)
    table = pa.Table.from_pylist(
        [{"userId": 1, "movieId": 7, "ts": moment, "event": "rating", "rating": 4.0}]
    )
    pq.write_table(table, path)
    columns = ColumnMapping.from_dict(
        {"user_id": "userId", "item_id": "movieId", "timestamp": "ts", "value": "rating"}
    )
    with test_pipeline.TestPipeline() as p:
        result = p | ParseInteractions(path, input_format="parquet", columns=columns)
        expected = {
            "user_id": "1",
            "item_id": "7",
            "timestamp": 1700000000,
            "event": "rating",
            "value": 4.0,
        }
        assert_that(result.rows | beam.FlatMap(lambda b: [s.row for s in b]), equal_to([expected]))


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "not_gzip"])
def test_a_damaged_gzip_file_fails_the_job_naming_the_file(tmp_path, damage):
    data = gzip.compress(_jsonl(INTERACTIONS * 2000))
    if damage == "corrupt":
        data = data[:100] + b"\x00" * 50 + data[150:]
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = _jsonl(INTERACTIONS)
    path = tmp_path / "logs.jsonl.gz"
    path.write_bytes(data)
    with pytest.raises(Exception, match=f"cannot read {path} as jsonl"):
        with test_pipeline.TestPipeline() as p:
            _ = p | ParseInteractions(str(path))


def test_auto_format_needs_a_known_extension():
    assert resolve_format("gs://b/x.csv.gz", "auto") == "csv"
    assert resolve_format("x.txt", "parquet") == "parquet"
    with pytest.raises(ValueError, match=r"cannot tell the format of 'x\.txt'"):
        resolve_format("x.txt", "auto")


def test_unknown_contract_names_in_a_mapping_are_rejected_with_the_valid_ones():
    with pytest.raises(ValueError) as e:
        ColumnMapping.from_dict({"userid": "u", "item_id": "movieId"})
    assert "unknown contract columns ['userid']" in str(e.value)
    assert ", ".join(CONTRACT_COLUMNS) in str(e.value)
    with pytest.raises(ValueError, match="must be a mapping"):
        ColumnMapping.from_dict(["user_id"])


def test_mapping_renames_and_never_falls_back_to_the_contract_name():
    mapping = ColumnMapping.from_dict({"item_id": "movieId"})
    assert mapping.apply({"movieId": 7, "x": 1}) == {"movieId": 7, "item_id": 7, "x": 1}
    # A stale item_id column must not stand in for a missing movieId.
    renamed = mapping.apply({"item_id": "stale"})
    with pytest.raises(fields.FieldError, match="missing item_id"):
        fields.parse_id(renamed, "item_id")
