"""Rating accuracy of the ranking head: RMSE and MAE of its predicted score against each eval
example's label (e.g. the star rating, with `ingest.event_labels: {rating: value}`)."""

from __future__ import annotations

import numpy as np

from evaluation.metrics import mae, rmse
from recstack import features as F
from trainer import data


def rating_metrics(keras_model, layout: F.DataLayout, history_length: int,
                   batch_size: int = 4096) -> dict[str, float]:  # fmt: skip
    """`{"rmse", "mae"}` of the model's ranking score on the eval split; `{}` for a model
    without a ranking head (retrieval only)."""
    if keras_model.ranker is None:
        return {}
    predictions, labels = [], []
    for batch in data.make_training_dataset(layout.eval_pattern, batch_size, history_length):
        predictions.append(np.asarray(keras_model(batch)["score"]).reshape(-1))
        labels.append(batch[F.LABEL].numpy().reshape(-1))
    if not predictions:
        return {}
    prediction, label = np.concatenate(predictions), np.concatenate(labels)
    return {"rmse": rmse(prediction, label), "mae": mae(prediction, label)}
