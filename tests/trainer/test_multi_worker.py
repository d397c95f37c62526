"""Two `python -m trainer.task` workers on loopback ports train one model with
MultiWorkerMirroredStrategy; only the chief (worker 0) writes the run's files."""

import glob
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf

pytestmark = pytest.mark.slow
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 240
CONFIG = """\
train:
  embedding_dim: 8
  batch_size: 64
  epochs: 2
  shuffle_buffer: 256
  eval_ks: [10]
  query:
    history_length: 5
"""


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _tail(path, chars=3000):
    """The last traceback of a worker's stderr, else its end."""
    with open(path, errors="replace") as f:
        text = f.read()
    start = text.rfind("Traceback")
    return text[start : start + chars] if start >= 0 else text[-chars:]


def _run_workers(argv_of, env_of, logs, n):
    """Starts `n` workers, waits for all of them; on timeout kills them and fails with their
    stderr tails."""
    procs = []
    for i in range(n):
        with open(logs / f"out{i}", "w") as out, open(logs / f"err{i}", "w") as err:
            procs.append(
                subprocess.Popen(argv_of(i), cwd=REPO, env=env_of(i), stdout=out, stderr=err)
            )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()
        tails = "\n".join(f"--- worker {i} ---\n{_tail(logs / f'err{i}')}" for i in range(n))
        pytest.fail(f"workers still running after {TIMEOUT_S}s:\n{tails}")
    return procs


def test_two_workers_train_and_only_the_chief_writes(data_dir, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(CONFIG)
    shared = {"AIP_CHECKPOINT_DIR": str(tmp_path / "ckpt"),
              "AIP_TENSORBOARD_LOG_DIR": str(tmp_path / "logs")}  # fmt: skip
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}

    def env_of(i):
        (tmp_path / f"tmp{i}").mkdir()
        env = dict(os.environ, **shared)
        env.update(
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            TMPDIR=str(tmp_path / f"tmp{i}"),  # Where a non-chief worker's writes go.
            CUDA_VISIBLE_DEVICES="",  # Both workers on the CPU, even on a GPU machine.
            TF_USE_LEGACY_KERAS="1",
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        env.pop("RECSTACK_DATA_DIR", None)
        return env

    def argv_of(i):
        # The same shared checkpoint and log directories (from the AIP_* variables, as on
        # Vertex AI), but a run directory of its own, to see what each worker writes there.
        return [sys.executable, "-m", "trainer.task", "--data-dir", data_dir,
                "--config", str(config), "--run-dir", str(tmp_path / f"run{i}")]  # fmt: skip

    procs = _run_workers(argv_of, env_of, tmp_path, 2)
    for i, proc in enumerate(procs):
        assert proc.returncode == 0, f"worker {i}:\n{_tail(tmp_path / f'err{i}')}"

    # The chief prints and writes the metrics; the other worker neither.
    out = (tmp_path / "out0").read_text()
    printed = json.loads(out[out.index("{") :])  # After Keras's one line per epoch.
    written = json.loads((tmp_path / "run0" / "metrics.json").read_text())
    assert written == printed
    assert set(written["model"]) == {"recall@10", "ndcg@10", "mrr"}
    assert 0 < written["model"]["recall@10"] <= 1
    assert "{" not in (tmp_path / "out1").read_text()
    run1 = tmp_path / "run1"
    assert not run1.exists(), f"the non-chief wrote {sorted(os.listdir(run1))} into its run dir"
    assert (tmp_path / "run0" / "run_config.json").exists()

    # The checkpoints of both epochs are in the shared directory; the non-chief's went to
    # its own temporary directory (saving is collective, so it writes them somewhere).
    latest = tf.train.latest_checkpoint(str(tmp_path / "ckpt" / "checkpoints"))
    assert latest is not None and latest.endswith("ckpt-2")
    assert glob.glob(str(tmp_path / "tmp1" / "*" / "ckpt-2.index"))
    assert not glob.glob(str(tmp_path / "tmp0" / "*"))
    assert not glob.glob(str(tmp_path / "ckpt" / "**" / "workertemp*"), recursive=True)

    # Every TensorBoard event file in the shared directory is the chief's (the file name
    # ends with the writer's process id).
    events = glob.glob(str(tmp_path / "logs" / "**" / "events.out.tfevents.*"), recursive=True)
    assert events
    assert {os.path.basename(e).split(".")[-3] for e in events} == {str(procs[0].pid)}
