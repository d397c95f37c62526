"""Cold-start evaluation on the tiny ingested data: the derived directory keeps held-out items
out of training (rows, histories, vocabulary) and everything else byte for byte; the cold eval
set holds only held-out items; the full evaluation gives finite metrics for the three systems."""

import collections
import filecmp
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from evaluation import cold_start
from recstack import features as F
from trainer import data

FRACTION, SEED = 0.2, 3


def _read_train(root):
    """Every train example of `root` as a dict, in file order (histories as lists)."""
    rows = []
    for path in sorted(tf.io.gfile.glob(F.DataLayout(root).train_pattern)):
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            rows.append({
                "user": feature[F.USER_ID].bytes_list.value[0].decode(),
                "item": feature[F.ITEM_ID].bytes_list.value[0].decode(),
                "time": feature[F.TIMESTAMP].int64_list.value[0],
                "history": [v.decode() for v in feature[F.HISTORY_ITEM_IDS].bytes_list.value],
                "times": list(feature[F.HISTORY_TIMESTAMPS].int64_list.value),
            })  # fmt: skip
    return rows


def _vocab_lines(root):
    with open(F.DataLayout(root).item_vocab, encoding="utf-8") as f:
        return [F.parse_vocabulary_line(line) for line in f]


@pytest.fixture(scope="module")
def derived(data_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("cold") / "data")
    return out, cold_start.hold_out_items(data_dir, out, FRACTION, SEED)


def test_held_out_items_are_drawn_among_items_with_eval_rows(data_dir, derived, tmp_path):
    _, held_out = derived
    layout = F.DataLayout(data_dir)
    eval_items = collections.Counter(
        data.read_columns(layout.eval_pattern, (F.ITEM_ID,))[F.ITEM_ID]
    )
    catalog = set(data.read_columns(layout.items_pattern, (F.ITEM_ID,), F.ITEM_FEATURES)[F.ITEM_ID])
    eligible = [item for item in catalog if eval_items[item] >= 1]
    assert held_out == sorted(set(held_out))
    assert len(held_out) == round(FRACTION * len(eligible))
    assert all(eval_items[item] >= 1 for item in held_out)
    again = cold_start.hold_out_items(data_dir, str(tmp_path / "again"), FRACTION, SEED)
    assert again == held_out  # Same seed, same items.


def test_train_split_loses_held_out_rows_and_history_entries(data_dir, derived):
    out, held_out = derived
    held = set(held_out)
    original, rewritten = _read_train(data_dir), _read_train(out)
    expected = []
    for row in original:
        if row["item"] in held:
            continue
        pairs = [(i, t) for i, t in zip(row["history"], row["times"], strict=True) if i not in held]
        expected.append({**row, "history": [i for i, _ in pairs], "times": [t for _, t in pairs]})
    assert rewritten == expected
    assert any(held & set(row["history"]) for row in original)  # Stripping was exercised.
    stats = json.load(open(F.DataLayout(out).stats))
    assert stats[F.STAT_TRAIN_ROWS] == len(expected)
    entry = stats[cold_start.STAT_COLD_START]
    assert entry["held_out_items"] == held_out
    assert (entry["fraction"], entry["seed"]) == (FRACTION, SEED)
    assert entry["train_rows_dropped"] == len(original) - len(expected)


def test_item_vocabulary_is_recounted_without_held_out_items(data_dir, derived):
    out, held_out = derived
    held = set(held_out)
    lines = _vocab_lines(out)
    assert not held & {token for token, _, _ in lines}
    # Dropping only held-out rows leaves the other items' counts as ingest wrote them.
    assert lines == [line for line in _vocab_lines(data_dir) if line[0] not in held]
    recount = collections.Counter(r["item"] for r in _read_train(data_dir) if r["item"] not in held)
    assert {token: count for token, count, _ in lines} == dict(recount)
    assert json.load(open(F.DataLayout(out).stats))[F.STAT_ITEMS] == len(lines)


def test_everything_else_is_copied_unchanged(data_dir, derived):
    out, _ = derived
    rewritten = {F.ITEM_VOCAB_FILE, F.STATS_FILE}
    names = sorted(n for n in os.listdir(data_dir) if not n.startswith(F.TRAIN_PREFIX + "-"))
    assert sorted(n for n in os.listdir(out) if not n.startswith(F.TRAIN_PREFIX + "-")) == names
    for name in set(names) - rewritten:
        assert filecmp.cmp(os.path.join(data_dir, name), os.path.join(out, name), shallow=False)
    assert any(n.startswith(F.EVAL_PREFIX) for n in names)
    assert any(n.startswith(F.ITEMS_PREFIX) for n in names)


def test_hold_out_rejects_bad_arguments(data_dir, derived, tmp_path):
    out, _ = derived
    with pytest.raises(FileExistsError, match="not empty"):
        cold_start.hold_out_items(data_dir, out)
    with pytest.raises(ValueError, match="fraction=0"):
        cold_start.hold_out_items(data_dir, str(tmp_path / "a"), fraction=0)
    with pytest.raises(ValueError, match="min_eval_interactions"):
        cold_start.hold_out_items(data_dir, str(tmp_path / "b"), min_eval_interactions=10**6)


def test_cold_eval_set_keeps_only_held_out_relevant_items(derived):
    out, held_out = derived
    layout = F.DataLayout(out)
    eval_set = cold_start.cold_eval_set(layout, held_out, history_length=5)
    held = set(held_out)
    catalog = data.read_columns(layout.items_pattern, (F.ITEM_ID,), F.ITEM_FEATURES)[F.ITEM_ID]
    assert list(eval_set.corpus_ids) == list(catalog)
    columns = data.read_columns(layout.eval_pattern, (F.USER_ID, F.ITEM_ID))
    expected = collections.defaultdict(set)
    for user, item in zip(columns[F.USER_ID], columns[F.ITEM_ID], strict=True):
        if item in held:
            expected[user].add(item)
    assert list(eval_set.users) == sorted(expected)
    for user, relevant, exclude in zip(eval_set.users, eval_set.relevant, eval_set.exclude,
                                       strict=True):  # fmt: skip
        assert {eval_set.corpus_ids[i] for i in relevant} == expected[user]
        assert not held & {eval_set.corpus_ids[i] for i in exclude}  # Never trained on.
    assert eval_set.queries[F.HISTORY_ITEM_IDS].shape == (len(expected), 5)
    with pytest.raises(ValueError, match="not in the catalog"):
        cold_start.cold_eval_set(layout, ["no-such-item"], history_length=5)


@pytest.mark.slow
def test_evaluate_cold_start_reports_three_systems(data_dir, tmp_path):
    from trainer.bert.tiny import write_tiny_bert

    bert = write_tiny_bert(str(tmp_path / "bert"), layers=1)
    overrides = {
        "epochs": 1, "batch_size": 128,
        "text": {"checkpoint": bert, "max_length": 16},
        "tensorboard": {"projector_items": 0, "histograms": False},
    }  # fmt: skip
    ks = (5, 10, 20)
    result = cold_start.evaluate_cold_start(
        data_dir, str(tmp_path / "work"), "frozen", FRACTION, SEED, ks, overrides
    )
    assert set(result.metrics) == {"text_model", "id_only", "random"}
    for values in result.metrics.values():
        assert list(values) == cold_start.metric_names(ks)
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in values.values())
    assert len(result.held_out) > 0 and result.cold_users > 0
    assert result.to_dict()["meta"]["cold_users"] == result.cold_users
    # Random lists hit about k / N of the relevant items (N = 80 items); loose for few users.
    for k in ks:
        assert result.metrics["random"][f"recall@{k}"] < 3 * k / result.catalog_items
    assert np.isclose(result.metrics["random"]["recall@20"], 20 / 80, atol=0.2)
    with pytest.raises(ValueError, match="no text tower"):
        cold_start.evaluate_cold_start(data_dir, str(tmp_path / "x"), "none")
