"""`recstack tensorboard`: the logdir spec from a run's manifest, and a live TensorBoard over
real event files that answers the HTTP API and stops cleanly."""

import json
import logging
import socket
import time
import urllib.parse
import urllib.request

import pytest
import tensorflow as tf

from pipeline import tensorboard_app

STAT_VALUES = [3.0, 5.0]  # statistics/num_rows at steps 0, 1
TRAIN_LOSS = [0.9, 0.5, 0.25]  # training/train/loss at steps 0..2
VALIDATION_LOSS = [1.0, 0.7, 0.6]


def _write_scalars(logdir, tag, values):
    with tf.summary.create_file_writer(str(logdir)).as_default():
        for step, value in enumerate(values):
            tf.summary.scalar(tag, value, step=step)


@pytest.fixture
def run_dir(tmp_path):
    """A run folder whose manifest lists statistics here, training in an older (cached) run,
    and an evaluation folder that does not exist."""
    run, cached = tmp_path / "runs" / "run-2", tmp_path / "runs" / "run-1"
    _write_scalars(run / "statistics", "num_rows", STAT_VALUES)
    _write_scalars(cached / "training" / "train", "loss", TRAIN_LOSS)
    _write_scalars(cached / "training" / "validation", "loss", VALIDATION_LOSS)
    manifest = {
        "run_id": "run-2",
        "tensorboard": {
            "statistics": "statistics",  # relative to the run folder
            "training": str(cached / "training"),
            "evaluation": str(run / "evaluation"),
        },
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_logdir_spec_lists_existing_folders_and_warns_about_the_rest(run_dir, caplog):
    with caplog.at_level(logging.WARNING, logger=tensorboard_app.__name__):
        spec = tensorboard_app.logdir_spec(str(run_dir))
    cached = run_dir.parent / "run-1"
    assert spec == f"statistics:{run_dir / 'statistics'},training:{cached / 'training'}"
    assert f"skipping evaluation, {run_dir / 'evaluation'} does not exist" in caplog.text


def test_logdir_spec_falls_back_to_a_plain_log_folder(tmp_path):
    _write_scalars(tmp_path / "logs" / "train", "loss", TRAIN_LOSS)
    assert tensorboard_app.logdir_spec(str(tmp_path / "logs")) == str(tmp_path / "logs")


def test_logdir_spec_explains_a_folder_without_logs(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"manifest.json does not exist.*no TensorBoard"):
        tensorboard_app.logdir_spec(str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"tensorboard": {"training": "gone"}}))
    with pytest.raises(FileNotFoundError, match=r"none of the TensorBoard folders.*\['training'\]"):
        tensorboard_app.logdir_spec(str(tmp_path))
    (tmp_path / "manifest.json").write_text(json.dumps({"stages": {}}))
    with pytest.raises(FileNotFoundError, match=r"\(none listed\)"):
        tensorboard_app.logdir_spec(str(tmp_path))


@pytest.mark.parametrize(
    "manifest, message",
    [
        ({"tensorboard": ["training"]}, r"'tensorboard' must map names to folders"),
        ({"tensorboard": {"a:b": "x"}}, r"run name 'a:b'"),
        ({"tensorboard": {"training": "x,y"}}, r"folder 'x,y' of 'training'"),
        ([1], r"expected a JSON object, got list"),
    ],
)
def test_logdir_spec_rejects_manifests_tensorboard_cannot_parse(tmp_path, manifest, message):
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=message):
        tensorboard_app.logdir_spec(str(tmp_path))


def _get_json(url, path, **query):
    full = urllib.parse.urljoin(url, path) + ("?" + urllib.parse.urlencode(query) if query else "")
    with urllib.request.urlopen(full, timeout=30) as response:
        return json.loads(response.read())


def _port_is_open(url):
    parsed = urllib.parse.urlparse(url)
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((parsed.hostname, parsed.port)) == 0


def test_tensorboard_serves_the_runs_of_every_listed_folder(run_dir):
    with tensorboard_app.start_tensorboard(str(run_dir), port=0, reload_interval=0) as board:
        assert board.url.startswith("http://localhost:")
        runs = _get_json(board.url, "data/runs")
        # Event files directly in a listed folder make the run "name/."; subfolders "name/sub".
        assert sorted(runs) == ["statistics/.", "training/train", "training/validation"]
        tags = _get_json(board.url, "data/plugin/scalars/tags")
        assert {run: sorted(run_tags) for run, run_tags in tags.items()} == {
            "statistics/.": ["num_rows"],
            "training/train": ["loss"],
            "training/validation": ["loss"],
        }
        for run, values in (
            ("training/validation", VALIDATION_LOSS),
            ("statistics/.", STAT_VALUES),
        ):
            tag = "loss" if run.startswith("training") else "num_rows"
            points = _get_json(board.url, "data/plugin/scalars/scalars", run=run, tag=tag)
            assert [step for _, step, _ in points] == list(range(len(values)))
            assert [value for _, _, value in points] == pytest.approx(values)
    assert not _port_is_open(board.url)


def test_a_taken_port_is_reported(run_dir):
    with tensorboard_app.start_tensorboard(str(run_dir), port=0, reload_interval=0) as board:
        port = urllib.parse.urlparse(board.url).port
        with pytest.raises(OSError, match=rf"port {port}.*pass another port"):
            tensorboard_app.start_tensorboard(str(run_dir), port=port, reload_interval=0)


def test_serve_forever_stops_on_ctrl_c(run_dir, monkeypatch, capsys):
    real_sleep = time.sleep

    def sleep(seconds):
        if seconds == 3600:  # serve_forever's wait: press Ctrl-C
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(tensorboard_app.time, "sleep", sleep)
    tensorboard_app.serve_forever(str(run_dir), port=0, reload_interval=0)
    out = capsys.readouterr().out
    url = out.split("serving at ")[1].split()[0]
    assert f"training:{run_dir.parent / 'run-1' / 'training'}" in out
    assert out.rstrip().endswith("TensorBoard stopped")
    assert not _port_is_open(url)
