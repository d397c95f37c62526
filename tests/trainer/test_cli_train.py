"""`recstack train`: `--set` overrides and the Vertex-style directory flags reach the run."""

import glob
import json
import os

import pytest

from recstack.cli import main
from trainer.train import CHECKPOINT_DIR, RUN_CONFIG_FILE

pytestmark = pytest.mark.slow


def test_train_command_applies_set_flags_and_directories(data_dir, tmp_path, capsys):
    run, checkpoints, board = (str(tmp_path / d) for d in ("run", "ckpt", "board"))
    config = tmp_path / "config.yaml"
    config.write_text("train:\n  batch_size: 128\n  text: {mode: frozen, max_length: 20}\n")
    main(["--config", str(config), "train", "--data", data_dir, "--run-dir", run,
          "--epochs", "1", "--set", "text.mode=none",
          "--set", "query.history_length=5", "--set", "tensorboard.projector_items=0",
          "--set", "eval_ks=[5]", "--checkpoint-dir", checkpoints,
          "--tensorboard-dir", board])  # fmt: skip
    with open(os.path.join(run, RUN_CONFIG_FILE), encoding="utf-8") as f:
        saved = json.load(f)["train"]
    assert saved["epochs"] == 1 and saved["query"]["history_length"] == 5
    # `--set` changes one key of a nested section; the rest comes from the file.
    assert saved["text"] == {**saved["text"], "mode": "none", "max_length": 20}
    assert saved["batch_size"] == 128
    assert os.listdir(os.path.join(checkpoints, CHECKPOINT_DIR))
    assert glob.glob(os.path.join(board, "train", "events.out.tfevents.*"))
    assert not os.path.exists(os.path.join(board, "projector"))
    assert '"recall@5"' in capsys.readouterr().out
