"""RMSE and MAE of the ranking head on the eval split."""

import numpy as np
import pytest

from evaluation.ratings import rating_metrics
from recstack import features as F
from trainer import data


def test_rating_metrics_match_a_direct_computation(data_dir, ranked_run):
    from trainer.train import restore_model

    model, config, _ = restore_model(ranked_run)
    layout = F.DataLayout(data_dir)
    result = rating_metrics(model, layout, config.query.history_length, batch_size=64)
    errors = []
    for batch in data.make_training_dataset(layout.eval_pattern, 1000, config.query.history_length):
        errors.append(np.asarray(model(batch)["score"]).reshape(-1) - batch[F.LABEL].numpy())
    errors = np.concatenate(errors)
    assert result["rmse"] == pytest.approx(float(np.sqrt(np.mean(errors**2))), rel=1e-5)
    assert result["mae"] == pytest.approx(float(np.mean(np.abs(errors))), rel=1e-5)


def test_a_retrieval_only_model_has_no_rating_metrics(data_dir, tmp_path):
    from trainer.config import TensorBoardConfig, TextConfig, TrainConfig
    from trainer.train import restore_model, train

    run = str(tmp_path / "run")
    board = TensorBoardConfig(projector_items=0, histograms=False)
    config = TrainConfig(epochs=1, batch_size=256, text=TextConfig(mode="none"), tensorboard=board)
    train(config, data_dir, run, verbose=0)
    model, config, _ = restore_model(run)
    assert rating_metrics(model, F.DataLayout(data_dir), config.query.history_length) == {}
