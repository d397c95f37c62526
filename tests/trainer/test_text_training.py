"""A model with a fine-tuned or frozen BERT text tower trains, restores from its checkpoint with
the same item vectors, and exports a ScaNN SavedModel that answers over the catalog."""

import numpy as np
import pytest
import scann  # noqa: F401  (registers the ScaNN ops the exported model needs)
import tensorflow as tf
import tf_keras
from saved_model_ops import CORE_OPS, saved_model_ops

from recstack import features as F
from trainer.bert.tiny import write_tiny_bert
from trainer.catalog import read_catalog
from trainer.config import TensorBoardConfig, TextConfig, TrainConfig
from trainer.data import read_vocabulary
from trainer.export import ExportConfig, export_models
from trainer.train import restore_model, train

pytestmark = pytest.mark.slow


class _ItemVectorsAtEnd(tf_keras.callbacks.Callback):
    def __init__(self, ids):
        super().__init__()
        self.ids, self.vectors = ids, None

    def on_train_end(self, logs=None):
        self.vectors = self.model.embed_items(self.ids)


def _cold_items(data_dir):
    """Two catalog items without training interactions (no id embedding row of their own)."""
    layout = F.DataLayout(data_dir)
    known = set(read_vocabulary(layout.item_vocab).tokens)
    catalog = read_catalog(layout)
    cold = [item for item in catalog.ids.tolist() if item not in known]
    assert len(cold) >= 2, "the tiny data should have cold items"
    return cold[:2]


@pytest.mark.parametrize("mode", ["finetune_top_layers", "frozen"])
def test_text_tower_trains_restores_and_exports(data_dir, tmp_path, mode):
    bert = write_tiny_bert(str(tmp_path / "bert"), layers=2)
    config = TrainConfig(
        epochs=2, batch_size=128,
        text=TextConfig(mode=mode, checkpoint=bert, max_length=16, finetune_top_layers=1),
        tensorboard=TensorBoardConfig(projector_items=0, histograms=False),
    )  # fmt: skip
    ids = np.array([*_cold_items(data_dir), "no-such-item"], dtype=object)
    ends = _ItemVectorsAtEnd(ids)
    run = str(tmp_path / "run")
    result = train(config, data_dir, run, extra_callbacks=[ends])
    assert all(np.isfinite(v) for v in result.metrics["model"].values())

    model, restored_config, _ = restore_model(run)
    assert restored_config == config
    # Frozen vectors come back from the checkpoint (the restored model starts them at zero).
    np.testing.assert_allclose(model.embed_items(ids), ends.vectors, rtol=1e-5, atol=1e-6)
    # Cold items share the OOV id row; their categories and text set them apart.
    assert not np.allclose(ends.vectors[0], ends.vectors[1])
    assert not np.allclose(ends.vectors[0], ends.vectors[2])

    versions = export_models(run, str(tmp_path / "models"), ExportConfig(k=5))
    serve = tf.saved_model.load(versions[F.MODEL_RETRIEVAL]).signatures[F.SERVING_SIGNATURE]
    users = tf.constant([model.query_model.vocabulary[0], "never-seen"])
    answer = serve(**{F.INPUT_USER_ID: users})
    assert answer[F.OUTPUT_ITEM_IDS].shape == (2, 5)
    returned = answer[F.OUTPUT_ITEM_IDS].numpy().astype(str)
    assert set(returned.ravel()) <= set(model.catalog.ids.tolist())
    scores = answer[F.OUTPUT_SCORES].numpy()
    assert np.all(np.diff(scores, axis=1) <= 1e-6)  # Best first.
    # Candidate text is precomputed into the index: serving needs no tensorflow-text ops.
    for name, path in versions.items():
        outside = saved_model_ops(path) - CORE_OPS
        assert all(op.startswith("Scann") for op in outside), (name, outside)
