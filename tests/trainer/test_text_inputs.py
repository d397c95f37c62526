"""Text tower modes as the candidate tower receives them (tiny random BERT)."""

import numpy as np
import pytest

from recstack import features as F
from trainer import text_inputs
from trainer.bert.tiny import write_tiny_bert
from trainer.catalog import catalog_from_rows
from trainer.config import TextConfig

CATALOG = catalog_from_rows(
    [{F.ITEM_ID: f"i{n}", F.TITLE: f"the item {n}", F.CATEGORIES: ["x"]} for n in range(5)]
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("bert"))
    write_tiny_bert(directory, layers=3)
    return directory


def test_none_adds_nothing():
    assert text_inputs.build(TextConfig(), 8, CATALOG) == (None, None)


def test_frozen_computes_one_vector_per_catalog_item_once(tiny):
    vectors, encoder = text_inputs.build(TextConfig(mode="frozen", checkpoint=tiny), 8, CATALOG)
    assert encoder is None
    assert vectors.shape == (5, 32) and vectors.dtype == np.float32
    assert not np.allclose(vectors[0], vectors[1])  # Different texts, different vectors.


def test_frozen_restoring_leaves_zeros_of_the_checkpoint_width_for_the_checkpoint(tiny):
    vectors, encoder = text_inputs.build(
        TextConfig(mode="frozen", checkpoint=tiny), 8, CATALOG, restoring=True
    )
    assert encoder is None
    assert vectors.shape == (5, 32) and not vectors.any()


def test_finetune_trains_only_the_top_layers_and_the_projection(tiny):
    config = TextConfig(mode="finetune_top_layers", checkpoint=tiny, finetune_top_layers=1)
    _, top1 = text_inputs.build(config, 8, CATALOG)
    _, full = text_inputs.build(TextConfig(mode="full", checkpoint=tiny), 8, CATALOG)
    out = top1(CATALOG.texts[:2].astype(str)).numpy()
    full(CATALOG.texts[:2].astype(str))
    assert out.shape == (2, 8)
    trainable = {v.name for v in top1.trainable_variables}
    assert any("projection" in name for name in trainable)
    assert len(top1.trainable_variables) < len(full.trainable_variables)


def test_frozen_vectors_missing_items_name_the_fix(tmp_path, monkeypatch):
    import beam_jobs.embeddings as embeddings

    monkeypatch.setattr(
        embeddings, "read_embeddings", lambda pattern: (["i0"], np.ones((1, 4), np.float32))
    )
    with pytest.raises(ValueError, match="rerun `recstack embed`"):
        text_inputs.build(TextConfig(mode="frozen", embeddings=str(tmp_path)), 8, CATALOG)
