"""Warm starting on grown vocabularies: rows follow their ids, dense layers are copied, config
changes are refused, and `train`/`recstack train --warm-start` apply it once per fresh run."""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import yaml

from beam_jobs.config import IngestConfig
from beam_jobs.ingest import run_ingest
from recstack import features as F
from recstack import synthetic
from recstack.cli import main
from trainer import data, evaluation
from trainer import train as train_lib
from trainer.catalog import read_catalog
from trainer.config import QueryConfig, RankingConfig, TensorBoardConfig, TrainConfig
from trainer.train import (
    CHECKPOINT_DIR,
    RUN_CONFIG_FILE,
    WARM_START_FILE,
    build_model,
    restore_model,
    train,
)
from trainer.warm_start import TABLES_FILE, VOCAB_DIR, warm_start

HISTORY = 5
# A high learning rate, so two epochs on the old logs teach the base something measurable.
CONFIG = TrainConfig(
    epochs=2, batch_size=128, learning_rate=0.01, eval_ks=(10,),
    ranking=RankingConfig(weight=0.5), query=QueryConfig(history_length=HISTORY),
    tensorboard=TensorBoardConfig(projector_items=0, histograms=False),
)  # fmt: skip
UNKNOWN = "never-seen-id"


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    """(old, new) ingested data dirs: the logs at 35% of their time span, then all of them."""
    root = tmp_path_factory.mktemp("grown")
    full = synthetic.generate(synthetic.SyntheticConfig(
        num_users=150, num_items=80, num_topics=4, mean_events_per_user=20, seed=5))  # fmt: skip
    first, last = synthetic.time_range(full)
    dirs = []
    for name, logs in (("old", synthetic.before(full, int(first + 0.35 * (last - first)))),
                       ("new", full)):  # fmt: skip
        paths = synthetic.write(logs, str(root / name / "raw"))
        run_ingest(IngestConfig(), paths["interactions"], paths["items"], str(root / name / "data"),
                   ["--direct_running_mode=in_memory"])  # fmt: skip
        dirs.append(str(root / name / "data"))
    return tuple(dirs)


@pytest.fixture(scope="module")
def base_run(grown, tmp_path_factory):
    """A run trained on the old logs."""
    run = str(tmp_path_factory.mktemp("base_run"))
    train(CONFIG, grown[0], run, verbose=0)
    return run


def _ids(data_dir: str) -> dict[str, list[str]]:
    """The ids a model trained on `data_dir` knows, read independently of the trainer: users of
    the vocabulary; items of the vocabulary or the catalog; categories of the catalog."""
    layout = F.DataLayout(data_dir)
    catalog = read_catalog(layout)
    items = set(data.read_vocabulary(layout.item_vocab).tokens) | set(catalog.ids.tolist())
    return {
        "user_id": list(data.read_vocabulary(layout.user_vocab).tokens),
        "item_id": sorted(items),
        "categories": sorted({c for row in catalog.categories.tolist() for c in row if c}),
    }


def _built(config: TrainConfig, data_dir: str, seed: int = 7):
    tf_keras.utils.set_random_seed(seed)
    model = build_model(config, data_dir)
    model(next(iter(_batches(data_dir, config.batch_size))))
    return model


def _batches(data_dir: str, batch_size: int, pattern: str = "train") -> tf.data.Dataset:
    layout = F.DataLayout(data_dir)
    split = layout.train_pattern if pattern == "train" else layout.eval_pattern
    return data.make_training_dataset(split, batch_size, HISTORY)


def _split(old: list[str], new: list[str]) -> tuple[list[str], list[str]]:
    """(ids in both, ids only in `new`)."""
    return sorted(set(old) & set(new)), sorted(set(new) - set(old))


def test_rows_follow_their_ids_and_dense_layers_are_copied(grown, base_run):
    old_ids, new_ids = _ids(grown[0]), _ids(grown[1])
    base, _, _ = restore_model(base_run)
    base(next(iter(_batches(grown[0], 16))))  # Builds (and so restores) every layer.
    model = _built(CONFIG, grown[1])
    tables = {"user_id": (model.query_model.user_embedding, base.query_model.user_embedding),
              "item_id": (model.item_embedding, base.item_embedding)}  # fmt: skip
    fresh = {}
    for name, (ours, _) in tables.items():
        common, added = _split(old_ids[name], new_ids[name])
        assert common and added, f"the fixture must grow the {name} vocabulary"
        fresh[name] = ours(tf.constant(added)).numpy()

    report = warm_start(model, base_run)

    for name, (ours, theirs) in tables.items():
        common, added = _split(old_ids[name], new_ids[name])
        moved = [i for i in common if ours.vocabulary.index(i) != theirs.vocabulary.index(i)]
        assert moved, f"no {name} changed row; the test would not tell rows from ids"
        looked_up = [ours(tf.constant(ids)).numpy() for ids in (common, [UNKNOWN], added)]
        np.testing.assert_array_equal(looked_up[0], theirs(tf.constant(common)).numpy())
        np.testing.assert_array_equal(looked_up[1], theirs(tf.constant([UNKNOWN])).numpy())
        np.testing.assert_array_equal(looked_up[2], fresh[name])
        # The base answers new ids with its OOV row; the new model must not.
        assert not np.allclose(looked_up[2], theirs(tf.constant(added)).numpy())
        assert dataclasses.asdict(report.tables[name]) == {
            "kept": len(common), "new": len(added), "fixed_rows": CONFIG.num_oov_buckets,
            "dropped": len(set(old_ids[name]) - set(new_ids[name])),
        }  # fmt: skip
    categories = set(old_ids["categories"]) & set(new_ids["categories"])
    assert report.tables["categories"].kept == len(categories)
    for ours, theirs in [(model.query_model.projection, base.query_model.projection),
                         (model.candidate_model.projection, base.candidate_model.projection),
                         (model.ranker.deep[0], base.ranker.deep[0]),
                         (model.ranker.output_layer, base.ranker.output_layer)]:  # fmt: skip
        for a, b in zip(ours.get_weights(), theirs.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
    # Everything but the three id tables (user, item, category) is copied as is.
    assert report.dense_variables == len(model.trainable_variables) - 3
    assert report.base_checkpoint.endswith(os.path.join(CHECKPOINT_DIR, "ckpt-2"))
    assert json.loads(json.dumps(report.to_dict()))["tables"]["user_id"]["kept"] > 0

    # Whole towers agree on old ids: item rows, category rows (looked up by name) and dense
    # layers all line up.
    common_items = _split(old_ids["item_id"], new_ids["item_id"])[0]
    items = np.array(common_items)
    np.testing.assert_allclose(
        model.embed_items(items), base.embed_items(items), rtol=1e-5, atol=1e-6
    )
    users = _split(old_ids["user_id"], new_ids["user_id"])[0]
    n = np.arange(len(users))
    history = items[n % len(items)][:, None].repeat(HISTORY, axis=1)
    queries = {F.USER_ID: np.array(users), F.HOUR: n % 24, F.WEEKDAY: n % 7,
               F.HISTORY_ITEM_IDS: history}  # fmt: skip
    np.testing.assert_allclose(model.embed_queries(queries), base.embed_queries(queries),
                               rtol=1e-5, atol=1e-6)  # fmt: skip


def test_warm_started_model_starts_better_than_a_cold_one(grown, base_run):
    layout = F.DataLayout(grown[1])
    results = {}
    for warm in (False, True):
        model = _built(CONFIG, grown[1])
        if warm:
            warm_start(model, base_run)
        losses = [float(model.compute_loss(b)) for b in _batches(grown[1], 128, "eval")]
        eval_set = evaluation.build_eval_set(layout, HISTORY, model.catalog.ids)
        scorer = evaluation.embedding_scorer(
            model.embed_queries(eval_set.queries), model.embed_items(eval_set.corpus_ids)
        )
        recall = evaluation.evaluate(scorer, eval_set, (10,))["recall@10"]
        results[warm] = (np.mean(losses), recall)
    (cold_loss, cold_recall), (warm_loss, warm_recall) = results[False], results[True]
    assert warm_loss < 0.97 * cold_loss, results
    assert warm_recall > cold_recall + 0.1, results


def test_runs_without_saved_vocabularies_use_their_data_dir(grown, base_run, tmp_path):
    old_run = str(tmp_path / "old_run")
    shutil.copytree(base_run, old_run)
    shutil.rmtree(os.path.join(old_run, VOCAB_DIR))
    models = [_built(CONFIG, grown[1]) for _ in range(2)]
    reports = [warm_start(m, run) for m, run in zip(models, (base_run, old_run), strict=True)]
    assert reports[0].tables == reports[1].tables
    for a, b in zip(*(m.variables for m in models), strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_another_embedding_dim_is_refused_with_the_fix(grown, base_run):
    model = _built(dataclasses.replace(CONFIG, embedding_dim=16), grown[1])
    with pytest.raises(ValueError) as raised:
        warm_start(model, base_run)
    message = str(raised.value)
    assert "model/" in message and "32]" in message and "16]" in message, message
    assert "embedding_dim" in message and "train from scratch" in message, message


def test_another_architecture_is_refused(grown, base_run):
    model = _built(dataclasses.replace(CONFIG, ranking=RankingConfig(weight=0.0)), grown[1])
    with pytest.raises(ValueError, match=r"model/ranker/.*architecture differs.*from scratch"):
        warm_start(model, base_run)


def test_train_command_warm_starts_and_records_it(grown, base_run, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"train": CONFIG.to_dict()}))
    run = str(tmp_path / "run")
    main(["--config", str(config), "train", "--data", grown[1], "--run-dir", run, "--epochs", "1",
          "--warm-start", base_run])  # fmt: skip
    assert '"recall@10"' in capsys.readouterr().out
    with open(os.path.join(run, WARM_START_FILE), encoding="utf-8") as f:
        report = json.load(f)
    old_ids, new_ids = _ids(grown[0]), _ids(grown[1])
    for name in ("user_id", "item_id"):
        common, added = _split(old_ids[name], new_ids[name])
        assert (report["tables"][name]["kept"], report["tables"][name]["new"]) == (
            len(common), len(added))  # fmt: skip
    with open(os.path.join(run, RUN_CONFIG_FILE), encoding="utf-8") as f:
        assert json.load(f)["warm_start_from"] == base_run
    # The new run's vocabularies are saved for the next warm start.
    with open(os.path.join(run, VOCAB_DIR, TABLES_FILE), encoding="utf-8") as f:
        saved = {t["name"]: t["ids"] for t in json.load(f).values()}
    assert saved["user_id"] == new_ids["user_id"]
    assert sorted(saved["item_id"]) == new_ids["item_id"]


class _Interrupted(Exception):
    pass


class _InterruptAfterFirstEpoch(tf_keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise _Interrupted  # After BackupAndRestore saved epoch 1.


class _RecordStart(tf_keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.weights = [], None

    def on_epoch_begin(self, epoch, logs=None):
        if self.weights is None:
            self.weights = self.model.query_model.user_embedding.embedding.embeddings.numpy()
        self.epochs.append(epoch)


@pytest.mark.slow
def test_resumed_run_resumes_its_own_progress(grown, base_run, tmp_path, monkeypatch):
    run = str(tmp_path / "run")
    with pytest.raises(_Interrupted):
        train(CONFIG, grown[1], run, verbose=0, warm_start_from=base_run,
              extra_callbacks=[_InterruptAfterFirstEpoch()])  # fmt: skip
    assert os.path.exists(os.path.join(run, WARM_START_FILE))
    os.remove(os.path.join(run, WARM_START_FILE))

    def must_not_run(*args, **kwargs):
        raise AssertionError("a resumed run warm-started again")

    monkeypatch.setattr(train_lib, "warm_start", must_not_run)
    record = _RecordStart()
    train(CONFIG, grown[1], run, verbose=0, warm_start_from=base_run, extra_callbacks=[record])
    assert record.epochs == [1]
    reader = tf.train.load_checkpoint(os.path.join(run, CHECKPOINT_DIR, "ckpt-1"))
    key = "model/query_model/user_embedding/embedding/embeddings/.ATTRIBUTES/VARIABLE_VALUE"
    np.testing.assert_array_equal(record.weights, reader.get_tensor(key))
    assert not os.path.exists(os.path.join(run, WARM_START_FILE))
