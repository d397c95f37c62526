"""Shared test setup: TFRS needs Keras 2, so select it before anything imports TensorFlow; and
the tiny ingested data set the trainer and evaluation tests share."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402  (after the Keras selection)

from beam_jobs.config import IngestConfig  # noqa: E402
from beam_jobs.ingest import run_ingest  # noqa: E402
from recstack import synthetic  # noqa: E402


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A tiny ingested data directory (150 users, 80 items), made once per session; read-only."""
    root = tmp_path_factory.mktemp("tiny_data")
    config = synthetic.SyntheticConfig(
        num_users=150, num_items=80, num_topics=4, mean_events_per_user=20, seed=5
    )
    paths = synthetic.write(synthetic.generate(config), str(root / "raw"))
    run_ingest(
        IngestConfig(), paths["interactions"], paths["items"], str(root / "data"),
        ["--direct_running_mode=in_memory"],
    )  # fmt: skip
    return str(root / "data")
