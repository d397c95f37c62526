"""Shared trainer fixtures."""

import pytest


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
