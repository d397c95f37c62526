"""Shared trainer fixtures."""

import pytest

from beam_jobs.config import IngestConfig
from beam_jobs.ingest import run_ingest
from recstack import synthetic


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


@pytest.fixture(scope="session")
def ranked_run(data_dir, tmp_path_factory):
    """A run trained for one epoch with the DCN ranking head and no time context (so served
    answers do not depend on the clock); read-only."""
    from trainer.config import QueryConfig, RankingConfig, TensorBoardConfig, TrainConfig
    from trainer.train import train

    run = str(tmp_path_factory.mktemp("ranked_run"))
    config = TrainConfig(
        epochs=1, batch_size=128, ranking=RankingConfig(weight=0.5),
        query=QueryConfig(use_context=False),
        tensorboard=TensorBoardConfig(projector_items=0, histograms=False),
    )  # fmt: skip
    train(config, data_dir, run, verbose=0)
    return run
