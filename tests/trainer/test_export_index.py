"""Export: the recall gate refuses an index that misses too much of the exact top-k and writes
nothing; the brute-force index is exact; ScaNN settings reach the version's metadata."""

import json
import os

import pytest

from recstack import features as F
from trainer.config import TensorBoardConfig, TrainConfig
from trainer.export import ExportConfig, RecallTooLowError, export_retrieval
from trainer.train import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    run = str(tmp_path_factory.mktemp("export_run"))
    quiet = TensorBoardConfig(projector_items=0, histograms=False)
    config = TrainConfig(epochs=1, batch_size=128, tensorboard=quiet)
    train(config, data_dir, run, verbose=0)
    return run


def _metadata(version_dir):
    with open(os.path.join(version_dir, F.EXPORT_METADATA_FILE), encoding="utf-8") as f:
        return json.load(f)


def test_an_index_below_min_recall_fails_and_writes_nothing(run_dir, tmp_path):
    # 40 partitions of 2 items, 1 searched, no spare candidates: most of the top 20 is missed.
    starved = ExportConfig(k=20, num_leaves=40, num_leaves_to_search=1,
                           num_reordering_candidates=20)  # fmt: skip
    with pytest.raises(RecallTooLowError, match=r"below export.min_recall=0.95; nothing"):
        export_retrieval(run_dir, str(tmp_path), starved)
    model_dir = tmp_path / F.MODEL_RETRIEVAL
    assert not model_dir.exists() or not any(model_dir.iterdir())


def test_brute_force_index_is_exact_and_scann_settings_are_recorded(run_dir, tmp_path):
    exact = export_retrieval(run_dir, str(tmp_path), ExportConfig(k=10, index="brute_force",
                                                                   min_recall=1.0))  # fmt: skip
    meta = _metadata(exact)
    assert meta["index"] == "brute_force" and meta["scann_recall_at_k"] == 1.0

    scann = export_retrieval(run_dir, str(tmp_path), ExportConfig(k=10, dimensions_per_block=1))
    meta = _metadata(scann)
    assert meta["version"] == 2 and meta["index"] == "scann"
    assert meta["scann"]["dimensions_per_block"] == 1 and meta["scann_recall_at_k"] >= 0.95


def test_export_config_rejects_impossible_values():
    with pytest.raises(ValueError, match="min_recall=1.5"):
        ExportConfig(min_recall=1.5)
    with pytest.raises(ValueError, match="index='hnsw'"):
        ExportConfig(index="hnsw")
    with pytest.raises(ValueError, match="dimensions_per_block=0"):
        ExportConfig(dimensions_per_block=0)


def test_automatic_scann_settings_by_catalog_size():
    small = ExportConfig(k=10).resolved(5_000)
    assert small["num_leaves"] == 70 and small["num_leaves_to_search"] == 70  # Every partition.
    large = ExportConfig(k=10).resolved(1_000_000)
    assert (large["num_leaves"], large["num_leaves_to_search"]) == (1000, 250)
    assert large["num_reordering_candidates"] == 100 and large["dimensions_per_block"] == 2
    # k a large share of a big catalog: enough partitions for ~10*k items.
    wide = ExportConfig(k=5_000).resolved(100_000)
    assert wide["num_leaves_to_search"] == 158  # ceil(10 * 5000 * 316 / 100000)
    with pytest.raises(ValueError, match="exceeds the 50 catalog items"):
        ExportConfig(k=100).resolved(50)
