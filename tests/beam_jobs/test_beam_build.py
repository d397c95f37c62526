"""`BuildExamples`: one shuffle from event tuples to written split shards and statistics."""

import glob
import os

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from beam_jobs.build import (
    INPUT_BYTES_PER_SHARD,
    BuildExamples,
    choose_num_shards,
    merge_counts,
    merge_item_count_maps,
    merge_item_counts,
    shard_of_key,
    to_event,
)
from beam_jobs.split import Cutoffs
from recstack import features as F

DAY = 86400
T0 = 1_700_000_000


def _event(user, item, ts, event="click", value=0.0):
    return to_event({F.USER_ID: user, F.ITEM_ID: item, F.TIMESTAMP: ts, F.EVENT: event,
                     F.VALUE: value})  # fmt: skip


def _read(output, prefix):
    """Returns {file name: [(user, item, ts, history item ids)]} of one split's shards."""
    spec = F.tf_parse_spec(F.INTERACTION_FEATURES)
    out = {}
    for path in sorted(glob.glob(os.path.join(output, f"{prefix}-*"))):
        records = list(tf.data.TFRecordDataset(path, compression_type="GZIP"))
        rows = []
        if records:
            ex = tf.io.parse_example(tf.stack(records), spec)
            for n in range(len(records)):
                rows.append((
                    ex[F.USER_ID][n].numpy().decode(), ex[F.ITEM_ID][n].numpy().decode(),
                    int(ex[F.TIMESTAMP][n].numpy()),
                    tuple(v.decode() for v in ex[F.HISTORY_ITEM_IDS][n].numpy()),
                ))  # fmt: skip
        out[os.path.basename(path)] = rows
    return out


EVENTS = [
    # u1: a duplicate click on a at T0 (dropped), a view of a (kept: another event type).
    _event("u1", "a", T0),
    _event("u1", "a", T0),
    _event("u1", "a", T0, "view"),
    _event("u1", "b", T0 + DAY),
    _event("u1", "c", T0 + 9 * DAY),
    _event("u2", "b", T0 + 2 * DAY),
    _event("u2", "c", T0 + 8 * DAY),
    _event("u3", "c", T0 + 10 * DAY),
]


def test_time_split_writes_every_shard_and_reports_vocabularies_and_counts(tmp_path):
    output = str(tmp_path / "out")
    # eval from T0 + 10d - 3d = T0 + 7d; test from T0 + 9d.
    with test_pipeline.TestPipeline() as p:
        result = (
            p
            | beam.Create([EVENTS[:3], EVENTS[3:]])  # Two batches.
            | BuildExamples(output, num_shards=3, eval_days=2, test_days=1)
        )
        assert_that(
            result.cutoffs, equal_to([Cutoffs(T0 + 7 * DAY, T0 + 9 * DAY)]), label="Cutoffs"
        )
        assert_that(
            result.user_vocab, equal_to([("u1", 3, T0), ("u2", 1, T0 + 2 * DAY)]), label="Users"
        )
        assert_that(
            result.item_vocab,
            equal_to([("a", 2, T0), ("b", 2, T0 + DAY)]),
            label="Items",
        )
        assert_that(
            result.item_counts,
            equal_to([("a", (2, 2, T0)), ("b", (2, 2, T0 + DAY)), ("c", (3, 0, None))]),
            label="ItemCounts",
        )
        # (events, distinct items): u1 4 events over a, b, c; u2 2 over b, c; u3 1.
        assert_that(result.activity, equal_to([(4, 3), (2, 2), (1, 1)]), label="Activity")
        assert_that(
            result.counts,
            equal_to(
                [
                    {
                        "duplicates": 1,
                        "rows": {"train": 4, "eval": 1, "test": 2},
                        "events": {
                            "train": {"click": 3, "view": 1},
                            "eval": {"click": 1},
                            "test": {"click": 2},
                        },
                    }
                ]
            ),  # fmt: skip
            label="Counts",
        )

    train, eval_, test = (_read(output, prefix) for prefix in ("train", "eval", "test"))
    for prefix, files in (("train", train), ("eval", eval_), ("test", test)):
        assert sorted(files) == [f"{prefix}-0000{i}-of-00003{F.TFRECORD_SUFFIX}" for i in range(3)]
    flat = {name: sorted(r for rows in files.values() for r in rows)
            for name, files in (("train", train), ("eval", eval_), ("test", test))}  # fmt: skip
    assert flat["train"] == [
        ("u1", "a", T0, ()), ("u1", "a", T0, ()), ("u1", "b", T0 + DAY, ("a", "a")),
        ("u2", "b", T0 + 2 * DAY, ()),
    ]  # fmt: skip
    assert flat["eval"] == [("u2", "c", T0 + 8 * DAY, ("b",))]
    assert flat["test"] == [
        ("u1", "c", T0 + 9 * DAY, ("a", "a", "b")),
        ("u3", "c", T0 + 10 * DAY, ()),
    ]
    # Every user's events sit in the shard its id hashes to.
    for files in (train, eval_, test):
        for name, rows in files.items():
            index = int(name.split("-")[1])
            assert all(shard_of_key(user, 3) == index for user, *_ in rows)


def test_leave_last_out_through_the_build(tmp_path):
    output = str(tmp_path / "out")
    with test_pipeline.TestPipeline() as p:
        result = (
            p
            | beam.Create([EVENTS])
            | BuildExamples(output, num_shards=1, split_method="leave_last_out")
        )
        assert_that(result.cutoffs, equal_to([Cutoffs(None, None)]), label="Cutoffs")
    test = sorted(r[:3] for rows in _read(output, "test").values() for r in rows)
    eval_ = sorted(r[:3] for rows in _read(output, "eval").values() for r in rows)
    # u1's events in time order: click a, view a (same time; click sorts first), b, c.
    assert test == [("u1", "c", T0 + 9 * DAY)]
    assert eval_ == [("u1", "b", T0 + DAY)]


def test_shards_no_user_hashes_to_are_written_empty(tmp_path):
    output = str(tmp_path / "out")
    with test_pipeline.TestPipeline() as p:
        _ = p | beam.Create([EVENTS[5:7]]) | BuildExamples(output, num_shards=4)
    user_shard = shard_of_key("u2", 4)
    rows_per_shard = [0] * 4
    for prefix in ("train", "eval", "test"):
        files = _read(output, prefix)
        assert sorted(files) == [f"{prefix}-0000{i}-of-00004{F.TFRECORD_SUFFIX}" for i in range(4)]
        for name, rows in files.items():
            rows_per_shard[int(name.split("-")[1])] += len(rows)
    # Only u2's shard holds records; the three others exist and are empty.
    assert rows_per_shard == [2 if i == user_shard else 0 for i in range(4)]


def test_merging_per_shard_counts():
    part = {"duplicates": 2, "rows": {"train": 1, "eval": 2, "test": 0},
            "events": {"train": {"a": 1}, "eval": {"a": 1, "b": 1}, "test": {}}}  # fmt: skip
    merged = merge_counts([part, part])
    assert merged == {
        "duplicates": 4,
        "rows": {"train": 2, "eval": 4, "test": 0},
        "events": {"train": {"a": 2}, "eval": {"a": 2, "b": 2}, "test": {}},
    }
    assert merge_item_counts([(3, 1, 50), (2, 2, 40), (1, 0, None)]) == (6, 3, 40)
    assert merge_item_counts([(1, 0, None)]) == (1, 0, None)
    first, second = {"a": (3, 1, 50), "b": (1, 0, None)}, {"a": (2, 2, 40), "c": (1, 1, 7)}
    merged = merge_item_count_maps([first, second])
    assert merged == {"a": (5, 3, 40), "b": (1, 0, None), "c": (1, 1, 7)}
    assert first == {"a": (3, 1, 50), "b": (1, 0, None)}  # Inputs unchanged.


def test_shard_choice_depends_only_on_the_input():
    assert choose_num_shards(0, 0) == 1
    assert choose_num_shards(INPUT_BYTES_PER_SHARD + 1, 0) == 2
    assert choose_num_shards(10**12, 7) == 7
    assert shard_of_key("u42", 5) == shard_of_key("u42", 5)
    assert {shard_of_key(f"u{i}", 4) for i in range(100)} == {0, 1, 2, 3}


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="num_shards"):
        BuildExamples("/unused", num_shards=0)
    with pytest.raises(ValueError, match="split method"):
        BuildExamples("/unused", num_shards=1, split_method="random")
