"""TensorBoard callbacks: the event files, projector files and traces a tiny fit leaves behind."""

import json
import os
import types

import numpy as np
import pytest
import tensorflow as tf
import tf_keras
import werkzeug.test
from google.protobuf import text_format
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin, projector
from tensorboard.plugins.hparams import api as hp
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.projector.projector_plugin import ProjectorPlugin

from trainer import tensorboard as tb
from trainer import tensorboard_scalars

NUM_ITEMS, DIM, EXAMPLES, BATCH = 20, 4, 44, 8  # 6 steps per epoch, the last one of 4 examples.
STEPS_PER_EPOCH, EPOCHS, EVERY = 6, 2, 2
SECONDS_PER_STEP = 0.5
SCHEDULE = dict(initial_learning_rate=0.1, decay_steps=3, decay_rate=0.5)
CONSTANT_RATE = 0.05


class _Clock:
    """`time` replacement for tensorboard_scalars; `_Record` advances it when a step ends."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


class _Record(tf_keras.callbacks.Callback):
    """Advances the clock after each step and records the logs Keras hands the callbacks.

    Listed first, so the callbacks after it see the advanced clock.
    """

    def __init__(self, clock: _Clock) -> None:
        super().__init__()
        self.clock = clock
        self.batch_logs: dict[int, dict] = {}
        self.epoch_logs: dict[int, dict] = {}

    def on_train_batch_end(self, batch, logs=None):
        self.clock.now += SECONDS_PER_STEP
        self.batch_logs[int(self.model.optimizer.iterations)] = dict(logs)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_logs[epoch + 1] = dict(logs)


def _model(learning_rate) -> tf_keras.Model:
    ids = tf_keras.Input(shape=(), dtype=tf.int32)
    embedded = tf_keras.layers.Embedding(NUM_ITEMS, DIM, name="item_embedding")(ids)
    outputs = {
        "retrieval": tf_keras.layers.Dense(1, name="retrieval")(embedded),
        "ranking": tf_keras.layers.Dense(1, name="ranking")(embedded),
    }
    model = tf_keras.Model(ids, outputs)
    model.compile(optimizer=tf_keras.optimizers.SGD(learning_rate), loss="mse", metrics=["mae"])
    return model


def _dataset() -> tf.data.Dataset:
    rng = np.random.default_rng(0)
    ids = rng.integers(0, NUM_ITEMS, EXAMPLES).astype(np.int32)
    labels = {
        "retrieval": rng.normal(size=(EXAMPLES, 1)).astype(np.float32),
        "ranking": rng.normal(size=(EXAMPLES, 1)).astype(np.float32),
    }
    return tf.data.Dataset.from_tensor_slices((ids, labels)).batch(BATCH)


def _fit(model: tf_keras.Model, dataset: tf.data.Dataset, callbacks: list) -> _Record:
    """Fits for EPOCHS with a clock that advances SECONDS_PER_STEP per step."""
    clock = _Clock()
    record = _Record(clock)
    fake_time = types.SimpleNamespace(perf_counter=clock.perf_counter)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tensorboard_scalars, "time", fake_time)
        model.fit(dataset, epochs=EPOCHS, verbose=0, callbacks=[record, *callbacks])
    return record


ITEM_IDS = [f"item{i}" for i in range(NUM_ITEMS)]
ITEM_IDS[1] = b"item\t1"  # Bytes, as read from a vocabulary, with a tab.
TITLES = [f"Title {i}" for i in range(NUM_ITEMS)]
TITLES[2] = "Two\tlines\nof title\r\nhere"
MAX_ITEMS = 15


@pytest.fixture(scope="module")
def scheduled_run(tmp_path_factory):
    """A fit with a decaying rate, counted examples, histograms, projector and a late trace."""
    tf_keras.utils.set_random_seed(0)
    root = str(tmp_path_factory.mktemp("scheduled"))
    model = _model(tf_keras.optimizers.schedules.ExponentialDecay(**SCHEDULE))
    table = model.get_layer("item_embedding").embeddings
    scalars = tb.TrainingScalars(os.path.join(root, "train"), every_n_steps=EVERY)
    callbacks = [
        scalars,
        tb.EmbeddingHistograms(
            os.path.join(root, "train"),
            {"item": table, "retrieval": lambda: model.get_layer("retrieval").kernel},
        ),
        tb.EmbeddingProjector(
            os.path.join(root, "projector"),
            table.numpy,
            ITEM_IDS,
            TITLES,
            max_items=MAX_ITEMS,
            each_epoch=True,
        ),
        # Runs past the last step (12), so on_train_end has to stop the profiler.
        tb.ProfilerWindow(os.path.join(root, "late_profile"), (5, 1000)),
    ]
    record = _fit(model, scalars.count_examples(_dataset()), callbacks)
    return types.SimpleNamespace(root=root, record=record, table=table.numpy())


@pytest.fixture(scope="module")
def constant_run(tmp_path_factory):
    """A fit with a constant rate, a given batch size, and a profiled and an unprofiled window."""
    tf_keras.utils.set_random_seed(1)
    root = str(tmp_path_factory.mktemp("constant"))
    callbacks = [
        tb.TrainingScalars(os.path.join(root, "train"), every_n_steps=EVERY, batch_size=BATCH),
        tb.ProfilerWindow(os.path.join(root, "profile"), (2, 3)),
        tb.ProfilerWindow(os.path.join(root, "no_profile"), None),
    ]
    record = _fit(_model(CONSTANT_RATE), _dataset(), callbacks)
    return types.SimpleNamespace(root=root, record=record)


LOSS_TAGS = {"losses/loss", "losses/retrieval_loss", "losses/ranking_loss"}
SCALAR_TAGS = {"learning_rate", "examples_per_second", *LOSS_TAGS}
STEP_WRITES = list(range(EVERY, EPOCHS * STEPS_PER_EPOCH + 1, EVERY))  # [2, 4, ..., 12]


def _steps(series):
    return [step for step, _ in series]


def _values(series):
    return np.array([value for _, value in series])


def test_train_run_has_exactly_the_expected_tags(scheduled_run):
    tags = tb.read_tags(scheduled_run.root)
    histograms = {f"{kind}/{name}" for kind in ("embeddings", "embedding_norms")
                  for name in ("item", "retrieval")}  # fmt: skip
    assert tags == {
        "train": SCALAR_TAGS | {f"epoch/{tag}" for tag in SCALAR_TAGS} | histograms
    }  # No `losses/retrieval_mae`: metrics that are not losses stay out.


def test_scheduled_learning_rate_is_the_schedule_at_the_logged_step(scheduled_run):
    scalars = tb.read_scalars(scheduled_run.root)["train"]
    rate = scalars["learning_rate"]
    assert _steps(rate) == STEP_WRITES
    expected = [SCHEDULE["initial_learning_rate"] * SCHEDULE["decay_rate"] ** (s / 3)
                for s in STEP_WRITES]  # fmt: skip
    np.testing.assert_allclose(_values(rate), expected, rtol=1e-6)
    epoch_rate = scalars["epoch/learning_rate"]
    assert _steps(epoch_rate) == [1, 2]
    np.testing.assert_allclose(_values(epoch_rate), [0.1 * 0.5**2, 0.1 * 0.5**4], rtol=1e-6)


def test_losses_are_the_logs_keras_reported(scheduled_run):
    scalars = tb.read_scalars(scheduled_run.root)["train"]
    record = scheduled_run.record
    for tag in LOSS_TAGS:
        key = tag.removeprefix("losses/")
        assert _steps(scalars[tag]) == STEP_WRITES
        np.testing.assert_array_equal(
            _values(scalars[tag]), np.float32([record.batch_logs[s][key] for s in STEP_WRITES])
        )
        np.testing.assert_array_equal(
            _values(scalars[f"epoch/{tag}"]),
            np.float32([record.epoch_logs[e][key] for e in (1, 2)]),
        )


def test_counted_examples_per_second(scheduled_run):
    scalars = tb.read_scalars(scheduled_run.root)["train"]
    window = EVERY * SECONDS_PER_STEP
    # Each epoch: two windows of 2 full batches, then one of a full and the 4-example batch.
    per_epoch = [2 * BATCH / window, 2 * BATCH / window, (BATCH + 4) / window]
    np.testing.assert_allclose(_values(scalars["examples_per_second"]), per_epoch * EPOCHS)
    epoch_seconds = STEPS_PER_EPOCH * SECONDS_PER_STEP
    np.testing.assert_allclose(
        _values(scalars["epoch/examples_per_second"]), [EXAMPLES / epoch_seconds] * EPOCHS
    )


def test_constant_rate_and_given_batch_size(constant_run):
    scalars = tb.read_scalars(constant_run.root)["train"]
    assert _steps(scalars["learning_rate"]) == STEP_WRITES
    np.testing.assert_array_equal(_values(scalars["learning_rate"]), np.float32(CONSTANT_RATE))
    np.testing.assert_array_equal(
        _values(scalars["epoch/learning_rate"]), np.float32(CONSTANT_RATE)
    )
    # batch_size * steps: the short last batch counts as a full one.
    np.testing.assert_allclose(_values(scalars["examples_per_second"]), BATCH / SECONDS_PER_STEP)
    assert _steps(scalars["epoch/examples_per_second"]) == [1, 2]


@pytest.mark.parametrize(
    "optimizer_class", [tf_keras.optimizers.SGD, tf_keras.optimizers.legacy.SGD]
)
def test_learning_rate_at_reads_constants_and_schedules(optimizer_class):
    schedule = tf_keras.optimizers.schedules.PiecewiseConstantDecay([2], [0.5, 0.25])
    constant, scheduled = optimizer_class(0.125), optimizer_class(schedule)
    scheduled.iterations.assign(3)
    assert tb.learning_rate_at(constant) == 0.125
    assert tb.learning_rate_at(scheduled) == 0.25  # Past the boundary at step 2.


def _histograms(root: str) -> dict[str, dict[int, np.ndarray]]:
    """`{tag: {step: [buckets, 3] (left edge, right edge, count)}}` of the histogram plugin."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for _, step, value in tb.iter_summary_values(root):
        if value.metadata.plugin_data.plugin_name == "histograms":
            out.setdefault(value.tag, {})[step] = tf.make_ndarray(value.tensor)
    return out


def test_embedding_histograms_cover_the_final_tables(scheduled_run):
    histograms = _histograms(scheduled_run.root)
    assert {tag: sorted(steps) for tag, steps in histograms.items()} == {
        tag: [1, 2]
        for tag in ("embeddings/item", "embedding_norms/item", "embeddings/retrieval",
                    "embedding_norms/retrieval")
    }  # fmt: skip
    table = scheduled_run.table
    values, norms = histograms["embeddings/item"][2], histograms["embedding_norms/item"][2]
    assert values[:, 2].sum() == NUM_ITEMS * DIM and norms[:, 2].sum() == NUM_ITEMS
    np.testing.assert_allclose([values[0, 0], values[-1, 1]], [table.min(), table.max()], rtol=1e-6)
    row_norms = np.linalg.norm(table, axis=1)
    np.testing.assert_allclose([norms[0, 0], norms[-1, 1]], [row_norms.min(), row_norms.max()],
                               rtol=1e-6)  # fmt: skip
    assert histograms["embeddings/retrieval"][2][:, 2].sum() == DIM  # Kernel [DIM, 1].


def test_projector_files(scheduled_run):
    directory = os.path.join(scheduled_run.root, "projector")
    with open(os.path.join(directory, "metadata.tsv"), encoding="utf-8") as f:
        rows = f.read().split("\n")
    assert rows[-1] == "" and len(rows) == 1 + MAX_ITEMS + 1
    assert rows[0] == "item_id\ttitle"
    assert rows[1:3] == ["item0\tTitle 0", "item 1\tTitle 1"]
    assert rows[3] == "item2\tTwo lines of title here"
    assert rows[MAX_ITEMS] == f"item{MAX_ITEMS - 1}\tTitle {MAX_ITEMS - 1}"

    with open(os.path.join(directory, "projector_config.pbtxt")) as f:
        config = text_format.Parse(f.read(), projector.ProjectorConfig())
    assert len(config.embeddings) == 1
    assert config.embeddings[0].tensor_name == "item_embeddings/.ATTRIBUTES/VARIABLE_VALUE"
    assert config.embeddings[0].metadata_path == "metadata.tsv"

    checkpoint = tf.train.latest_checkpoint(directory)
    assert os.path.basename(checkpoint) == "embeddings-3"  # Two epochs, then the end of fit.
    stored = tf.train.load_checkpoint(checkpoint).get_tensor(config.embeddings[0].tensor_name)
    np.testing.assert_array_equal(stored, scheduled_run.table[:MAX_ITEMS])


def test_tensorboard_projector_plugin_serves_the_run(scheduled_run):
    root = scheduled_run.root
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(root)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, root)
    apps = ProjectorPlugin(
        base_plugin.TBContext(logdir=root, data_provider=provider, multiplexer=multiplexer)
    ).get_plugin_apps()

    def get(route: str, **query) -> bytes:
        response = werkzeug.test.Client(apps[route]).get(route, query_string=query)
        assert response.status_code == 200, response.get_data()
        return response.get_data()

    assert json.loads(get("/runs")) == ["projector"]
    info = json.loads(get("/info", run="projector"))["embeddings"]
    assert [(e["tensorName"], e["tensorShape"]) for e in info] == [
        ("item_embeddings/.ATTRIBUTES/VARIABLE_VALUE", [MAX_ITEMS, DIM])
    ]
    name = info[0]["tensorName"]
    served = np.frombuffer(get("/tensor", run="projector", name=name), np.float32)
    np.testing.assert_array_equal(served.reshape(MAX_ITEMS, DIM), scheduled_run.table[:MAX_ITEMS])
    assert get("/metadata", run="projector", name=name).decode().count("\n") == 1 + MAX_ITEMS


def test_projector_rejects_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError, match="3 item_ids but 2 titles"):
        tb.EmbeddingProjector(str(tmp_path), np.zeros, ["a", "b", "c"], ["A", "B"])
    callback = tb.EmbeddingProjector(str(tmp_path), lambda: np.zeros([2, 4]), ["a", "b", "c"],
                                     ["A", "B", "C"])  # fmt: skip
    with pytest.raises(ValueError, match=r"shape \(2, 4\), expected \[3, embedding_dim\]"):
        callback.write()


def _profile_files(directory: str) -> list[str]:
    return [os.path.relpath(os.path.join(d, name), directory)
            for d, _, names in os.walk(directory) for name in names]  # fmt: skip


def test_profiler_window_writes_a_trace(constant_run):
    files = _profile_files(os.path.join(constant_run.root, "profile"))
    assert len(files) == 1, files
    assert files[0].startswith(os.path.join("plugins", "profile", ""))
    assert files[0].endswith(".xplane.pb")
    assert os.path.getsize(os.path.join(constant_run.root, "profile", files[0])) > 0
    assert not os.path.exists(os.path.join(constant_run.root, "no_profile"))


def test_profiler_stopped_when_training_ends_inside_the_window(scheduled_run, tmp_path):
    files = _profile_files(os.path.join(scheduled_run.root, "late_profile"))
    assert len(files) == 1 and files[0].endswith(".xplane.pb"), files
    tf.profiler.experimental.start(str(tmp_path))  # Raises AlreadyExistsError if still on.
    tf.profiler.experimental.stop()


@pytest.mark.parametrize(
    "steps_per_execution, traced",
    [(1, [("start", 5), ("stop", 7)]), (3, [("start", 4), ("stop", 9)])],
)
def test_profiler_window_steps(monkeypatch, steps_per_execution, traced):
    """Window (5, 7) over 2 epochs of 6 steps, with Keras's batch indices per call."""
    events, done = [], [0]  # `done`: steps finished when the profiler is called.
    monkeypatch.setattr(
        tf.profiler.experimental, "start", lambda d: events.append(("start", done[0] + 1))
    )
    monkeypatch.setattr(tf.profiler.experimental, "stop", lambda: events.append(("stop", done[0])))
    callback = tb.ProfilerWindow("unused", (5, 7))
    callback.on_train_begin()
    for epoch in range(2):
        callback.on_epoch_begin(epoch)
        for first in range(0, 6, steps_per_execution):
            last = first + steps_per_execution - 1
            callback.on_train_batch_begin(first)
            done[0] += steps_per_execution
            callback.on_train_batch_end(last)
    callback.on_train_end()
    assert events == traced


def test_profiler_window_validation():
    with pytest.raises(ValueError, match=r"window=\(3, 2\)"):
        tb.ProfilerWindow("unused", (3, 2))
    with pytest.raises(ValueError, match=r"window=\(0, 2\)"):
        tb.ProfilerWindow("unused", (0, 2))


HPARAMS = {
    "learning_rate": 0.1,
    "model": {"embedding_dim": np.int64(4), "eval_ks": (10, 50)},
    "optimizer": "sgd",
    "logq_correction": True,
    "profile_steps": None,
}
FLAT = {
    "learning_rate": 0.1,
    "model.embedding_dim": 4,
    "model.eval_ks": "[10, 50]",
    "optimizer": "sgd",
    "logq_correction": True,
    "profile_steps": "None",
}


def test_hparams_and_final_metrics_round_trip(tmp_path):
    log_dir = str(tmp_path)
    written = tb.write_hparams(
        log_dir, HPARAMS, ["recall_at_10", hp.Metric("recall_at_50", group="eval")], "run-1"
    )
    tb.write_final_metrics(log_dir, {"recall_at_10": 0.25}, step=6)
    assert written == FLAT
    assert tb.read_tags(log_dir) == {
        ".": {"_hparams_/experiment", "_hparams_/session_start_info", "recall_at_10"}
    }
    assert tb.read_scalars(log_dir)["."]["recall_at_10"] == [(6, 0.25)]

    plugin = {}
    for _, _, value in tb.iter_summary_values(log_dir):
        if value.metadata.plugin_data.plugin_name == "hparams":
            plugin[value.tag] = plugin_data_pb2.HParamsPluginData.FromString(
                value.metadata.plugin_data.content
            )
    experiment = plugin["_hparams_/experiment"].experiment
    assert [info.name for info in experiment.hparam_infos] == list(FLAT)
    assert [(m.name.group, m.name.tag) for m in experiment.metric_infos] == [
        ("", "recall_at_10"),
        ("eval", "recall_at_50"),
    ]
    session = plugin["_hparams_/session_start_info"].session_start_info
    assert session.group_name == "run-1"
    values = {name: getattr(v, v.WhichOneof("kind")) for name, v in session.hparams.items()}
    assert values == FLAT


def test_hparams_errors_name_the_bad_value(tmp_path):
    with pytest.raises(TypeError, match=r"hparams\['model.path'\] is a object"):
        tb.write_hparams(str(tmp_path), {"model": {"path": object()}}, ["loss"])
    with pytest.raises(TypeError, match=r"hparams\['ks'\]=\(1, b'x'\)"):
        tb.flatten_hparams({"ks": (1, b"x")})
    with pytest.raises(ValueError, match="metrics is empty"):
        tb.write_hparams(str(tmp_path), {"a": 1}, [])
    with pytest.raises(TypeError, match=r"metrics\['recall'\]='high'"):
        tb.write_final_metrics(str(tmp_path), {"recall": "high"}, step=1)


def test_training_scalars_needs_a_batch_size_or_counted_data(tmp_path):
    model = _model(0.1)
    with pytest.raises(ValueError, match="count_examples"):
        model.fit(_dataset().take(1), verbose=0, callbacks=[tb.TrainingScalars(str(tmp_path))])
    with pytest.raises(ValueError, match="batch_size=8 was given"):
        tb.TrainingScalars(str(tmp_path), batch_size=8).count_examples(_dataset())
