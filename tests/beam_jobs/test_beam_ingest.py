"""End-to-end tests of the ingestion job on small JSON Lines inputs written by the tests.

Expected outputs are computed here from the generated rows, not by the job's own functions.
"""

import collections
import datetime
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

from beam_jobs.config import IngestConfig
from beam_jobs.ingest import pipeline_options, run, run_ingest
from beam_jobs.outputs import OutputExistsError
from recstack import features

DAY = 86400
T0 = 1_700_000_000
IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def _catalog():
    """Returns (catalog lines, expected kept items by id, expected dead-letter raw lines)."""
    items = {}
    lines = []
    for k in range(6):  # i5 has no interactions: a cold item that must reach the corpus.
        record = {"item_id": f"i{k}", "title": f"Item {k}", "description": f"About {k}"}
        if k % 2:
            record["categories"] = f"c{k}|shared"
        else:
            record["categories"] = [f"c{k}", "shared"]
        lines.append(json.dumps(record))
        items[f"i{k}"] = (record["title"], record["description"], [f"c{k}", "shared"])
    # A later duplicate of i0 that sorts before the original text: the earlier line is kept.
    duplicate = json.dumps({"item_id": "i0", "title": "Item 0 again"})
    assert duplicate < lines[0]
    lines.append(duplicate)
    bad = {"{broken": "invalid JSON", '{"title": "no id"}': "missing item_id"}
    dead = {duplicate: "duplicate item_id 'i0'", **bad}
    return [*lines, "", *bad], items, dead


def _interactions():
    """Returns (lines per file, good rows as tuples, dead-letter reasons by raw line)."""
    rows, lines = [], []
    for n in range(30):
        row = (f"u{n % 4}", f"i{n % 5}", T0 + n * DAY // 2, ("view", "click", "purchase")[n % 3])
        value = float(n) / 4 if n % 5 else None
        record = {"user_id": row[0], "item_id": row[1], "timestamp": row[2], "event": row[3]}
        if n % 3 == 0:
            moment = datetime.datetime.fromtimestamp(row[2], datetime.UTC)
            record["timestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if value is not None:
            record["value"] = value
        rows.append((*row, value or 0.0))
        lines.append(json.dumps(record))
    unknown = json.dumps({"user_id": "u1", "item_id": "i99", "timestamp": T0, "event": "click"})
    bad = {
        "not json": "invalid JSON",
        unknown: "unknown item_id 'i99'",
        json.dumps({"item_id": "i1", "timestamp": T0, "event": "view"}): "missing user_id",
        '{"user_id": "u1", "item_id": "i1", "timestamp": 1, "event": "view", "value": NaN}': (
            "value must be a finite number"
        ),
        json.dumps({"user_id": "u1", "item_id": "i1", "timestamp": "soon", "event": "v"}): (
            "timestamp 'soon'"
        ),
    }
    first = [*lines[:15], "", *list(bad)[:3]]
    # lines[20] twice: an exact duplicate event, dropped and counted.
    second = ["  ", *lines[15:], lines[20], *list(bad)[3:]]
    return [first, second], rows, bad


def _write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


@pytest.fixture
def inputs(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    files, rows, bad = _interactions()
    interaction_files = [_write(raw / f"log-{i}.jsonl", lines) for i, lines in enumerate(files)]
    catalog_lines, items, catalog_dead = _catalog()
    catalog_file = _write(raw / "items.jsonl", catalog_lines)
    return {
        "interactions": str(raw / "log-*.jsonl"),
        "interaction_files": interaction_files,
        "items": catalog_file,
        "rows": rows,
        "bad": bad,
        "catalog": items,
        "catalog_dead": catalog_dead,
        "output": str(tmp_path / "data"),
        "duplicates": 1,
    }


def _read_examples(pattern, feature_specs):
    files = sorted(glob.glob(pattern))
    assert files, f"no files match {pattern}"
    records = list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())
    if not records:
        return {}
    parsed = tf.io.parse_example(tf.constant(records), features.tf_parse_spec(feature_specs))
    return {
        name: (tensor.to_list() if isinstance(tensor, tf.RaggedTensor) else tensor.numpy().tolist())
        for name, tensor in parsed.items()
    }


def _interaction_tuples(parsed):
    if not parsed:
        return []
    names = (features.USER_ID, features.ITEM_ID, features.TIMESTAMP, features.EVENT, features.VALUE)
    columns = [parsed[name] for name in names]
    return sorted(
        (user.decode(), item.decode(), ts, event.decode(), value)
        for user, item, ts, event, value in zip(*columns, strict=True)
    )


def _check_derived_features(parsed, rows, history_length=20):
    """History holds only the user's strictly earlier events; context matches the timestamp."""
    for n in range(len(parsed.get(features.USER_ID, []))):
        user, ts = parsed[features.USER_ID][n].decode(), parsed[features.TIMESTAMP][n]
        earlier = sorted((r[2], r[1]) for r in rows if r[0] == user and r[2] < ts)
        earlier = earlier[-history_length:]
        assert [i.decode() for i in parsed[features.HISTORY_ITEM_IDS][n]] == [i for _, i in earlier]
        assert parsed[features.HISTORY_TIMESTAMPS][n] == [t for t, _ in earlier]
        moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
        assert (parsed[features.HOUR][n], parsed[features.WEEKDAY][n]) == (
            moment.hour,
            moment.weekday(),
        )
        assert (parsed[features.LABEL][n], parsed[features.WEIGHT][n]) == (1.0, 1.0)


def _vocab_text(token_times):
    """Vocabulary text from (token, timestamp) pairs: count and earliest time per token."""
    counts, first = collections.Counter(), {}
    for token, time in token_times:
        counts[token] += 1
        first[token] = min(time, first.get(token, time))
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return "".join(f"{token}\t{count}\t{first[token]}\n" for token, count in ordered)


def _gini(values):
    """Gini by the mean absolute difference: sum |xi - xj| / (2 n^2 mean)."""
    values = np.asarray(values, dtype=float)
    n, mean = len(values), values.mean()
    return float(np.abs(values[:, None] - values[None, :]).sum() / (2 * n * n * mean))


def _expected_data_stats(rows, train, eval_, catalog):
    per_user = collections.Counter(r[0] for r in rows)
    users_counts = np.array(list(per_user.values()))
    per_item = collections.Counter(r[1] for r in rows)
    items = set(catalog) | set(per_item)
    train_items = {r[1] for r in train}
    pairs = {(r[0], r[1]) for r in rows}
    return {
        features.STAT_EVENTS_PER_SPLIT: {
            "train": dict(collections.Counter(r[3] for r in train)),
            "eval": dict(collections.Counter(r[3] for r in eval_)),
            "test": {},
        },
        features.STAT_DISTINCT_USERS: len(per_user),
        features.STAT_DISTINCT_ITEMS: len(per_item),
        features.STAT_EVENTS_PER_USER: {
            "min": int(users_counts.min()),
            **{
                f"p{round(q * 100)}": int(np.quantile(users_counts, q, method="inverted_cdf"))
                for q in (0.25, 0.5, 0.75, 0.9, 0.99)
            },
            "max": int(users_counts.max()),
            "mean": float(users_counts.mean()),
        },
        features.STAT_ITEM_GINI: pytest.approx(_gini([per_item[i] for i in items])),
        features.STAT_SPARSITY: pytest.approx(1 - len(pairs) / (len(per_user) * len(per_item))),
        features.STAT_COLD_ITEM_SHARE: len(set(catalog) - train_items) / len(catalog),
    }


def _check_outputs(inputs, stats, eval_days=7.0):
    """Checks every output of a strict-catalog run against independently computed values."""
    layout = features.DataLayout(inputs["output"])
    rows = inputs["rows"]
    latest = max(row[2] for row in rows)
    expected_eval = sorted(r for r in rows if r[2] >= latest - eval_days * DAY)
    expected_train = sorted(r for r in rows if r[2] < latest - eval_days * DAY)
    assert expected_train and expected_eval

    train = _read_examples(layout.train_pattern, features.INTERACTION_FEATURES)
    eval_ = _read_examples(layout.eval_pattern, features.INTERACTION_FEATURES)
    assert _interaction_tuples(train) == expected_train
    assert _interaction_tuples(eval_) == expected_eval
    _check_derived_features(train, rows)
    _check_derived_features(eval_, rows)

    corpus = _read_examples(layout.items_pattern, features.ITEM_FEATURES)
    got_items = {
        item_id.decode(): (title.decode(), description.decode(), [c.decode() for c in cats])
        for item_id, title, description, cats in zip(
            corpus[features.ITEM_ID],
            corpus[features.TITLE],
            corpus[features.DESCRIPTION],
            corpus[features.CATEGORIES],
            strict=True,
        )
    }
    assert got_items == inputs["catalog"]

    with open(layout.user_vocab, encoding="utf-8") as f:
        assert f.read() == _vocab_text((r[0], r[2]) for r in expected_train)
    with open(layout.item_vocab, encoding="utf-8") as f:
        assert f.read() == _vocab_text((r[1], r[2]) for r in expected_train)

    letters = []
    for path in glob.glob(layout.dead_letter_pattern):
        with open(path, encoding="utf-8") as f:
            letters.extend(json.loads(line) for line in f)
    expected_letters = {("interactions", raw): reason for raw, reason in inputs["bad"].items()}
    expected_letters.update(
        {("catalog", raw): reason for raw, reason in inputs["catalog_dead"].items()}
    )
    assert sorted((d["source"], d["raw"]) for d in letters) == sorted(expected_letters)
    for letter in letters:
        assert expected_letters[letter["source"], letter["raw"]] in letter["reason"]
        assert isinstance(letter["line"], int) and letter["line"] >= 1
        expected_files = (
            inputs["interaction_files"] if letter["source"] == "interactions" else [inputs["items"]]
        )
        assert letter["file"] in expected_files

    expected_stats = {
        features.STAT_ROWS_IN: len(rows) + len(inputs["bad"]) + inputs["duplicates"],
        features.STAT_ROWS_WRITTEN: len(rows),
        features.STAT_DEAD_LETTERS: len(inputs["bad"]),
        features.STAT_DUPLICATES_DROPPED: inputs["duplicates"],
        features.STAT_TRAIN_ROWS: len(expected_train),
        features.STAT_EVAL_ROWS: len(expected_eval),
        features.STAT_TEST_ROWS: 0,
        features.STAT_USERS: len({r[0] for r in expected_train}),
        features.STAT_ITEMS: len({r[1] for r in expected_train}),
        features.STAT_CATALOG_ITEMS: len(inputs["catalog"]),
        features.STAT_CATALOG_DEAD_LETTERS: len(inputs["catalog_dead"]),
        features.STAT_USER_ROWS: 0,
        features.STAT_USER_DEAD_LETTERS: 0,
        features.STAT_USER_ATTRIBUTES: [],
        features.STAT_SPLIT_TIMESTAMP: latest - int(eval_days * DAY),
        features.STAT_TEST_SPLIT_TIMESTAMP: None,
        features.STAT_SPLIT_METHOD: "time",
        **_expected_data_stats(rows, expected_train, expected_eval, inputs["catalog"]),
    }
    assert stats == expected_stats
    with open(layout.stats, encoding="utf-8") as f:
        assert json.load(f) == expected_stats
    assert stats["rows_in"] == (
        stats["rows_written"] + stats["dead_letters"] + stats["duplicates_dropped"]
    )


def _siblings(output):
    parent, name = os.path.split(output)
    return sorted(e for e in os.listdir(parent) if e.startswith(name))


def test_run_ingest_writes_every_output_and_replaces_only_with_overwrite(inputs):
    stale = os.path.join(inputs["output"], f"train-00000-of-00009{features.TFRECORD_SUFFIX}")
    os.makedirs(inputs["output"])
    with open(stale, "wb") as f:
        f.write(b"left over from an earlier run")
    args = (IngestConfig(), inputs["interactions"], inputs["items"], inputs["output"], IN_MEMORY)

    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_ingest(*args)
    assert os.listdir(inputs["output"]) == [os.path.basename(stale)]

    stats = run_ingest(*args, overwrite=True)

    assert not os.path.exists(stale)
    _check_outputs(inputs, stats)
    # No staging or set-aside directory is left next to the output.
    assert _siblings(inputs["output"]) == [os.path.basename(inputs["output"])]


def test_a_failed_rerun_leaves_the_previous_output_untouched(inputs, tmp_path):
    args = (IngestConfig(), inputs["interactions"], inputs["items"], inputs["output"], IN_MEMORY)
    run_ingest(*args)
    before = _file_bytes(inputs["output"])
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 this is not deflate data")

    with pytest.raises(Exception, match="broken.jsonl.gz"):
        run_ingest(IngestConfig(), str(broken), *args[2:], overwrite=True)

    assert _file_bytes(inputs["output"]) == before
    assert _siblings(inputs["output"]) == [os.path.basename(inputs["output"])]


def _file_bytes(directory):
    """Returns {file name: bytes} of every file in `directory`."""
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), "rb") as f:
            out[name] = f.read()
    return out


@pytest.mark.slow
def test_reruns_give_byte_identical_outputs_across_runner_modes(inputs, tmp_path):
    """The same input gives the same bytes in every file, single- or multi-process."""
    first, second = str(tmp_path / "first"), str(tmp_path / "second")
    config = IngestConfig(direct_num_workers=2, num_shards=3)
    run_ingest(config, inputs["interactions"], inputs["items"], first, IN_MEMORY)
    run_ingest(config, inputs["interactions"], inputs["items"], second)

    first_files, second_files = _file_bytes(first), _file_bytes(second)
    assert first_files == second_files
    assert len([n for n in first_files if n.startswith(features.TRAIN_PREFIX)]) == 3


@pytest.mark.slow
def test_run_ingest_on_the_default_multiprocess_runner(inputs):
    config = IngestConfig(num_shards=2, direct_num_workers=2)
    stats = run_ingest(config, inputs["interactions"], inputs["items"], inputs["output"])

    _check_outputs(inputs, stats)
    assert len(glob.glob(features.DataLayout(inputs["output"]).train_pattern)) == 2


def test_leave_last_out_through_the_job_holds_out_each_users_last_events(inputs):
    config = IngestConfig(split_method="leave_last_out")
    stats = run_ingest(config, inputs["interactions"], inputs["items"], inputs["output"], IN_MEMORY)

    by_user = collections.defaultdict(list)
    for row in inputs["rows"]:
        by_user[row[0]].append(row)
    expected = {"train": [], "eval": [], "test": []}
    for rows in by_user.values():
        rows.sort(key=lambda r: r[2])
        expected["train"] += rows[:-2]
        expected["eval"].append(rows[-2])
        expected["test"].append(rows[-1])
    layout = features.DataLayout(inputs["output"])
    for name, pattern in (
        ("train", layout.train_pattern),
        ("eval", layout.eval_pattern),
        ("test", layout.test_pattern),
    ):
        parsed = _read_examples(pattern, features.INTERACTION_FEATURES)
        assert _interaction_tuples(parsed) == sorted(expected[name]), name
        _check_derived_features(parsed, inputs["rows"])
    assert stats[features.STAT_SPLIT_METHOD] == "leave_last_out"
    assert stats[features.STAT_SPLIT_TIMESTAMP] is None
    assert stats[features.STAT_TEST_ROWS] == len(by_user)


def test_the_users_table_is_validated_deduplicated_and_written(inputs, tmp_path):
    lines = [
        json.dumps({"user_id": "u0", "country": "DE", "age": 34, "ignored": "x"}),
        json.dumps({"user_id": "u1", "country": " FR "}),
        json.dumps({"user_id": "u0", "country": "US"}),  # Duplicate: the first line is kept.
        json.dumps({"country": "IT"}),  # No id.
        '{"user_id": "u2", "age": NaN}',  # Non-finite attribute.
        json.dumps({"user_id": "u3", "country": ["a", "b"]}),  # Not a scalar.
        json.dumps({"user_id": "u9", "age": 51.5, "country": None}),  # No events: still kept.
    ]
    users = _write(tmp_path / "users.jsonl", lines)
    config = IngestConfig(user_attributes=("country", "age"))
    stats = run_ingest(
        config, inputs["interactions"], inputs["items"], inputs["output"], IN_MEMORY, users=users
    )

    layout = features.DataLayout(inputs["output"])
    parsed = _read_examples(layout.users_pattern, features.user_features(("country", "age")))
    got = sorted(
        zip(
            (v.decode() for v in parsed[features.USER_ID]),
            (v.decode() for v in parsed["country"]),
            (v.decode() for v in parsed["age"]),
            strict=True,
        )
    )
    assert got == [("u0", "DE", "34"), ("u1", "FR", ""), ("u9", "", "51.5")]
    assert stats[features.STAT_USER_ROWS] == 3
    assert stats[features.STAT_USER_DEAD_LETTERS] == 4
    assert stats[features.STAT_USER_ATTRIBUTES] == ["country", "age"]
    letters = []
    for path in glob.glob(layout.dead_letter_pattern):
        with open(path, encoding="utf-8") as f:
            letters.extend(json.loads(line) for line in f)
    user_letters = {d["line"]: d["reason"] for d in letters if d["source"] == "users"}
    assert sorted(user_letters) == [3, 4, 5, 6]
    assert "duplicate user_id 'u0'" in user_letters[3]
    assert "missing user_id" in user_letters[4]
    assert "age must be finite" in user_letters[5]
    assert "country must be a string, number or boolean" in user_letters[6]


def test_a_time_split_with_a_test_window(inputs):
    config = IngestConfig(eval_days=3, test_days=2)
    stats = run_ingest(config, inputs["interactions"], inputs["items"], inputs["output"], IN_MEMORY)

    latest = max(row[2] for row in inputs["rows"])
    test_from, eval_from = latest - 2 * DAY, latest - 5 * DAY
    layout = features.DataLayout(inputs["output"])
    test = _interaction_tuples(_read_examples(layout.test_pattern, features.INTERACTION_FEATURES))
    eval_ = _interaction_tuples(_read_examples(layout.eval_pattern, features.INTERACTION_FEATURES))
    assert test == sorted(r for r in inputs["rows"] if r[2] >= test_from)
    assert eval_ == sorted(r for r in inputs["rows"] if eval_from <= r[2] < test_from)
    assert (stats[features.STAT_SPLIT_TIMESTAMP], stats[features.STAT_TEST_SPLIT_TIMESTAMP]) == (
        eval_from,
        test_from,
    )
    assert test and eval_


def test_cli_reads_yaml_overrides_eval_days_and_passes_beam_flags(inputs, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text("ingest:\n  strict_catalog: false\n  eval_days: 1\n")
    argv = [
        "--interactions", inputs["interactions"],
        "--items", inputs["items"],
        "--output", inputs["output"],
        "--config", str(config_path),
        "--eval-days", "3",
        *IN_MEMORY,
    ]  # fmt: skip

    stats = run(argv)

    # Non-strict: the interaction with the unknown item i99 is kept (at T0, so in train).
    known_bad = 1
    assert stats[features.STAT_DEAD_LETTERS] == len(inputs["bad"]) - known_bad
    assert stats[features.STAT_ROWS_WRITTEN] == len(inputs["rows"]) + known_bad
    latest = max(row[2] for row in inputs["rows"])
    assert stats[features.STAT_SPLIT_TIMESTAMP] == latest - 3 * DAY
    expected_eval = sum(1 for r in inputs["rows"] if r[2] >= latest - 3 * DAY)
    assert stats[features.STAT_EVAL_ROWS] == expected_eval
    vocab = features.DataLayout(inputs["output"]).item_vocab
    with open(vocab, encoding="utf-8") as f:
        assert f"i99\t1\t{T0}\n" in f.read()


def test_missing_input_files_fail_with_the_pattern_and_delete_nothing(inputs, tmp_path):
    os.makedirs(inputs["output"])
    earlier = features.DataLayout(inputs["output"]).stats
    with open(earlier, "w", encoding="utf-8") as f:
        f.write("{}")
    missing = str(tmp_path / "nowhere-*.jsonl")
    with pytest.raises(OSError, match="nowhere"):
        run_ingest(
            IngestConfig(), missing, inputs["items"], inputs["output"], IN_MEMORY, overwrite=True
        )
    assert os.listdir(inputs["output"]) == [features.STATS_FILE]
    assert _siblings(inputs["output"]) == [os.path.basename(inputs["output"])]


def test_cli_rejects_eval_days_that_a_split_timestamp_would_ignore(inputs, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text("ingest:\n  split_timestamp: 1700000000\n")
    argv = [
        "--interactions", inputs["interactions"],
        "--items", inputs["items"],
        "--output", inputs["output"],
        "--config", str(config_path),
        "--eval-days", "3",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="--eval-days 3.0 has no effect"):
        run(argv)


def test_local_defaults_use_the_multiprocess_direct_runner():
    options = pipeline_options(3)
    assert options.view_as(StandardOptions).runner == "FnApiRunner"
    direct = options.view_as(DirectOptions)
    assert direct.direct_running_mode == "multi_processing"
    assert direct.direct_num_workers == 3


def test_user_flags_win_over_local_defaults():
    direct = pipeline_options(2, ["--direct_running_mode=in_memory"]).view_as(DirectOptions)
    assert direct.direct_running_mode == "in_memory"


def test_beam_flags_for_other_runners_pass_through_unchanged():
    args = ["--runner", "DataflowRunner", "--project", "p", "--temp_location", "gs://b/tmp"]
    options = pipeline_options(2, args)
    assert options.get_all_options(drop_default=True) == {
        "runner": "DataflowRunner",
        "project": "p",
        "temp_location": "gs://b/tmp",
    }
