"""Export: the recall gate refuses an index that misses too much of the exact top-k and writes
nothing; the brute-force index is exact; ScaNN settings reach the version's metadata."""

import json
import os

import pytest

from recstack import features as F
from trainer.export import ExportConfig, RecallTooLowError, export_models

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run_dir(ranked_run):
    return ranked_run


def _metadata(version_dir):
    with open(os.path.join(version_dir, F.EXPORT_METADATA_FILE), encoding="utf-8") as f:
        return json.load(f)


def test_an_index_below_min_recall_fails_and_writes_nothing(run_dir, tmp_path):
    # 40 partitions of 2 items, 1 searched, no spare candidates: most of the top 20 is missed.
    starved = ExportConfig(k=20, num_leaves=40, num_leaves_to_search=1,
                           num_reordering_candidates=20)  # fmt: skip
    with pytest.raises(RecallTooLowError, match=r"below export.min_recall=0.95; nothing"):
        export_models(run_dir, str(tmp_path), starved)
    for name in F.SERVED_MODELS:
        model_dir = tmp_path / name
        assert not model_dir.exists() or not any(model_dir.iterdir())


def test_brute_force_index_is_exact_and_scann_settings_are_recorded(run_dir, tmp_path):
    retrieval = ExportConfig(k=10, index="brute_force", min_recall=1.0, models=("retrieval",))
    exact = export_models(run_dir, str(tmp_path), retrieval)
    assert list(exact) == [F.MODEL_RETRIEVAL]
    meta = _metadata(exact[F.MODEL_RETRIEVAL])
    assert meta["index"] == "brute_force" and meta["index_recall_at_k"] == 1.0
    assert meta["index_params"] == {"k": 10}

    scann = export_models(run_dir, str(tmp_path), ExportConfig(k=10, dimensions_per_block=1))
    # One version number for the whole export: one past the highest of any model.
    assert {name: _metadata(path)["version"] for name, path in scann.items()} == {
        name: 2 for name in F.SERVED_MODELS
    }
    meta = _metadata(scann[F.MODEL_RECOMMENDER])
    assert meta["index"] == "scann" and meta["model"] == F.MODEL_RECOMMENDER
    assert meta["index_params"]["dimensions_per_block"] == 1 and meta["index_recall_at_k"] >= 0.95


def test_export_config_rejects_impossible_values():
    with pytest.raises(ValueError, match="min_recall=1.5"):
        ExportConfig(min_recall=1.5)
    with pytest.raises(ValueError, match="index='hnsw'"):
        ExportConfig(index="hnsw")
    with pytest.raises(ValueError, match="dimensions_per_block=0"):
        ExportConfig(dimensions_per_block=0)
    with pytest.raises(ValueError, match=r"models=\['retrieval', 'rank'\] .*unknown: \['rank'\]"):
        ExportConfig(models=("retrieval", "rank"))


def test_automatic_scann_settings_by_catalog_size():
    small = ExportConfig(k=10).resolved(5_000)
    assert small["num_leaves"] == 70 and small["num_leaves_to_search"] == 70  # Every partition.
    large = ExportConfig(k=10).resolved(1_000_000)
    assert (large["num_leaves"], large["num_leaves_to_search"]) == (1000, 50)  # 5%
    assert large["num_reordering_candidates"] == 100 and large["dimensions_per_block"] == 2
    # The items wanted per query a large share of a big catalog: partitions for ~10x them.
    wide = ExportConfig(k=5_000, num_candidates=5_000).resolved(100_000)
    assert wide["num_leaves_to_search"] == 158  # ceil(10 * 5000 * 316 / 100000)
    candidates = ExportConfig(k=10, num_candidates=8_000).resolved(1_000_000)
    assert candidates["num_leaves_to_search"] == 80  # ceil(10 * 8000 * 1000 / 1e6)
    with pytest.raises(ValueError, match="exceeds the 50 catalog items"):
        ExportConfig(k=100).resolved(50)
