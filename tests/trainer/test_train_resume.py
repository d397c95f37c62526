"""A training run killed with SIGKILL resumes from its last epoch with the saved weights."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from trainer.config import TrainConfig
from trainer.train import CHECKPOINT_DIR, train

pytestmark = pytest.mark.slow
CONFIG = TrainConfig(epochs=4, batch_size=256)


def _user_embeddings(checkpoint: str) -> np.ndarray:
    reader = tf.train.load_checkpoint(checkpoint)
    keys = [k for k in reader.get_variable_to_shape_map()
            if "query_model/user_embedding/embedding/embeddings/.ATTRIBUTES" in k
            and "OPTIMIZER_SLOT" not in k]  # fmt: skip
    assert len(keys) == 1, keys
    return reader.get_tensor(keys[0])


class _RecordStart(tf_keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []
        self.weights_at_start = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.weights_at_start is None:
            self.weights_at_start = (
                self.model.query_model.user_embedding.embedding.embeddings.numpy().copy()
            )
        self.epochs.append(epoch)


def test_sigkilled_run_resumes_where_it_stopped(data_dir, tmp_path):
    run_dir = str(tmp_path / "run")
    script = textwrap.dedent(f"""
        import os, signal
        import recstack
        import tf_keras
        from recstack.config import from_dict
        from trainer.config import TrainConfig
        from trainer.train import train

        class KillAfterSecondEpoch(tf_keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 1:
                    os.kill(os.getpid(), signal.SIGKILL)

        train(from_dict(TrainConfig, {CONFIG.to_dict()!r}), {data_dir!r}, {run_dir!r},
              extra_callbacks=[KillAfterSecondEpoch()])
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    saved = tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINT_DIR))
    assert saved.endswith("ckpt-2")

    record = _RecordStart()
    result = train(CONFIG, data_dir, run_dir, extra_callbacks=[record])
    assert record.epochs == [2, 3]  # Only the epochs the killed run had not finished.
    np.testing.assert_array_equal(record.weights_at_start, _user_embeddings(saved))
    assert result.checkpoint.endswith("ckpt-4")
    assert set(result.metrics) == {"model", "popularity"}


MID_EPOCH = TrainConfig(epochs=3, batch_size=64, checkpoint_steps=10)


def test_run_killed_mid_epoch_resumes_from_its_step_backup(data_dir, tmp_path):
    run_dir, saved = str(tmp_path / "run"), str(tmp_path / "at_backup.npy")
    # Kills the run 2 steps after the first step backup inside epoch 2, having saved the
    # weights that backup holds.
    script = textwrap.dedent(f"""
        import os, signal
        import numpy as np
        import tf_keras
        from recstack.config import from_dict
        from trainer.config import TrainConfig
        from trainer.train import train

        class KillMidEpoch(tf_keras.callbacks.Callback):
            seen, kill_at = 0, None

            def on_train_batch_end(self, batch, logs=None):
                self.seen += 1
                if self.kill_at is None and self.epoch == 1 and batch > 0 and self.seen % 10 == 0:
                    embeddings = self.model.query_model.user_embedding.embedding.embeddings
                    np.save({saved!r}, embeddings.numpy())
                    self.kill_at = self.seen + 2
                if self.seen == self.kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)

            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

        train(from_dict(TrainConfig, {MID_EPOCH.to_dict()!r}), {data_dir!r}, {run_dir!r},
              extra_callbacks=[KillMidEpoch()])
    """)
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    # Only epoch 1 had finished: its checkpoint is the last one.
    assert tf.train.latest_checkpoint(os.path.join(run_dir, CHECKPOINT_DIR)).endswith("ckpt-1")

    record = _RecordStart()
    resumed = train(MID_EPOCH, data_dir, run_dir, extra_callbacks=[record])
    assert record.epochs == [1, 2]  # Epoch 2 again (from its backed-up step), then epoch 3.
    # The weights at the restart are the step backup's, not epoch 1's checkpoint.
    np.testing.assert_array_equal(record.weights_at_start, np.load(saved))
    assert not np.array_equal(record.weights_at_start, _user_embeddings(
        os.path.join(run_dir, CHECKPOINT_DIR, "ckpt-1")))  # fmt: skip
    assert resumed.checkpoint.endswith("ckpt-3")

    uninterrupted = train(MID_EPOCH, data_dir, str(tmp_path / "uninterrupted"))
    for name in ("recall@10", "ndcg@10"):
        got, want = resumed.metrics["model"][name], uninterrupted.metrics["model"][name]
        assert got == pytest.approx(want, abs=0.05), (name, got, want)
        assert got > resumed.metrics["popularity"][name]
