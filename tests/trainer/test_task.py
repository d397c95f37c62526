"""`trainer.task` turns flags and the Vertex AI environment into paths and a TrainConfig."""

import json

import pytest

from recstack.config import DEFAULT_CONFIG, load_section
from trainer import task
from trainer.config import HardwareConfig, TrainConfig
from trainer.train import RunPaths

AIP = {
    "AIP_MODEL_DIR": "gs://bucket/job/model/",
    "AIP_CHECKPOINT_DIR": "gs://bucket/job/checkpoints/",
    "AIP_TENSORBOARD_LOG_DIR": "gs://bucket/job/logs/",
}


def _args(*argv):
    return task.build_parser().parse_args(list(argv))


def _tf_config(task_type="worker", index=0, **cluster):
    cluster = cluster or {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": task_type,
                                                                   "index": index}})}  # fmt: skip


@pytest.fixture
def yaml_config(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text(
        "train:\n"
        "  epochs: 4\n"
        "  batch_size: 128\n"
        "  hardware:\n"
        "    mixed_precision: true\n"
        "    steps_per_execution: 8\n"
    )
    return str(path)


def test_paths_from_flags_only():
    paths = task.resolve_paths(_args("--run-dir", "/runs/a"), {})
    assert paths == RunPaths("/runs/a")
    assert paths.checkpoints == "/runs/a/checkpoints"
    assert paths.tensorboard == "/runs/a/tensorboard"


def test_paths_from_vertex_environment():
    paths = task.resolve_paths(_args(), AIP)
    assert paths == RunPaths(
        run_dir="gs://bucket/job/model/",
        checkpoint_dir="gs://bucket/job/checkpoints/",
        tensorboard_dir="gs://bucket/job/logs/",
    )
    assert paths.checkpoints == "gs://bucket/job/checkpoints/checkpoints"
    assert paths.backup == "gs://bucket/job/checkpoints/backup"
    assert paths.tensorboard == "gs://bucket/job/logs/"


def test_path_flags_win_over_environment():
    args = _args("--run-dir", "/r", "--checkpoint-dir", "/c", "--tensorboard-dir", "/t")
    assert task.resolve_paths(args, AIP) == RunPaths("/r", "/c", "/t")
    # A flag for one path leaves the others to the environment.
    paths = task.resolve_paths(_args("--run-dir", "/r"), AIP)
    assert paths == RunPaths("/r", AIP["AIP_CHECKPOINT_DIR"], AIP["AIP_TENSORBOARD_LOG_DIR"])


def test_missing_run_dir_names_flag_and_variable():
    with pytest.raises(ValueError, match="--run-dir.*AIP_MODEL_DIR"):
        task.resolve_paths(_args(), {"AIP_CHECKPOINT_DIR": "/c"})


def test_data_dir_from_flag_then_environment():
    env = {"RECSTACK_DATA_DIR": "gs://bucket/data"}
    assert task.resolve_data_dir(_args("--data-dir", "/d"), env) == "/d"
    assert task.resolve_data_dir(_args(), env) == "gs://bucket/data"
    with pytest.raises(ValueError, match="--data-dir.*RECSTACK_DATA_DIR"):
        task.resolve_data_dir(_args(), AIP)


def test_config_defaults_to_the_demo_file():
    assert task.resolve_config(_args(), {}) == load_section(DEFAULT_CONFIG, "train", TrainConfig)


def test_flags_override_nested_sections_and_keep_the_rest(yaml_config):
    args = _args(
        "--config", yaml_config, "--epochs", "2", "--checkpoint-steps", "50",
        "--strategy", "mirrored", "--no-mixed-precision", "--jit-compile",
    )  # fmt: skip
    config = task.resolve_config(args, {})
    assert (config.epochs, config.checkpoint_steps, config.batch_size) == (2, 50, 128)
    assert config.hardware == HardwareConfig(
        strategy="mirrored", mixed_precision=False, jit_compile=True, steps_per_execution=8
    )


def test_set_flags_reach_any_field_and_named_flags_win(yaml_config):
    sets = ["--set", "text.mode=frozen", "--set", "hardware.steps_per_execution=2"]
    args = _args("--config", yaml_config, *sets, "--set", "epochs=9", "--epochs", "3")
    config = task.resolve_config(args, {})
    assert config.text.mode == "frozen" and config.epochs == 3
    assert config.hardware == HardwareConfig(mixed_precision=True, steps_per_execution=2)


def test_unset_flags_leave_the_file_alone(yaml_config):
    config = task.resolve_config(_args("--config", yaml_config), {})
    assert (config.epochs, config.checkpoint_steps) == (4, 0)
    assert config.hardware == HardwareConfig(mixed_precision=True, steps_per_execution=8)


@pytest.mark.parametrize(
    "environ",
    [
        _tf_config("worker", 1),
        _tf_config("chief", 0, chief=["c:1"], worker=["w:1"]),
        _tf_config("worker", 0, chief=["c:1"], worker=["w:1", "w:2"], evaluator=["e:1"]),
    ],
    ids=["two-workers", "chief-and-worker", "chief-workers-evaluator"],
)
def test_cluster_of_several_tasks_selects_multi_worker(environ):
    assert task.resolve_config(_args(), environ).hardware.strategy == "multi_worker"


def test_single_task_cluster_keeps_the_file_strategy():
    # Vertex AI sets TF_CONFIG with one chief even on a single-replica job.
    environ = _tf_config("chief", 0, chief=["c:1"])
    assert task.resolve_config(_args(), environ).hardware.strategy == "default"


def test_strategy_flag_wins_over_tf_config(tmp_path, caplog):
    environ = _tf_config("worker", 0)
    assert task.resolve_config(_args("--strategy", "default"), environ).hardware.strategy == (
        "default"
    )
    assert "each task trains its own model" in caplog.text
    tpu = tmp_path / "tpu.yaml"
    tpu.write_text("train:\n  hardware:\n    strategy: tpu\n")
    assert task.resolve_config(_args("--config", str(tpu)), environ).hardware.strategy == "tpu"


def test_multi_worker_without_cluster_names_tf_config():
    with pytest.raises(ValueError, match="TF_CONFIG"):
        task.resolve_config(_args("--strategy", "multi_worker"), {})


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        ('["worker"]', "TF_CONFIG must be a JSON object"),
        ('{"cluster": {"worker": "h:1"}}', "TF_CONFIG cluster="),
    ],
)
def test_malformed_tf_config_is_named(text, message):
    with pytest.raises(ValueError, match=message):
        task.resolve_config(_args(), {"TF_CONFIG": text})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--epochs", "0"], "epochs=0"),
        (["--checkpoint-steps", "-5"], "checkpoint_steps=-5"),
    ],
)
def test_impossible_values_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        task.resolve_config(_args(*argv), {})


@pytest.mark.parametrize(
    "argv, flag",
    [(["--strategy", "horovod"], "--strategy"), (["--epochs", "two"], "--epochs")],
)
def test_unparsable_flags_are_named(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _args(*argv)
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "environ, chief",
    [
        (_tf_config("worker", 0), True),
        (_tf_config("worker", 1), False),
        (_tf_config("chief", 0, chief=["c:1"], worker=["w:1"]), True),
        (_tf_config("worker", 0, chief=["c:1"], worker=["w:1"]), False),
    ],
)
def test_only_the_chief_reports_in_multi_worker_training(environ, chief):
    config = task.resolve_config(_args(), environ)
    assert task.is_chief_task(config, environ) is chief
    # Outside multi-worker training every replica trains (and reports) on its own.
    single = task.resolve_config(_args("--strategy", "default"), environ)
    assert task.is_chief_task(single, environ)


def test_main_reports_the_missing_flag(monkeypatch, capsys):
    monkeypatch.delenv("RECSTACK_DATA_DIR", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        task.main(["--run-dir", "/r"])
    assert exit_info.value.code == 2
    assert "--data-dir is required" in capsys.readouterr().err
