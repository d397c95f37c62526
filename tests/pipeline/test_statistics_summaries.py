"""Tests of StatisticsGen's TensorBoard view: the feature table and the summaries, from
hand-written statistics and from the statistics of a real tiny ingestion."""

import pytest

from pipeline.statistics import compute_statistics
from pipeline.statistics_summaries import feature_table, write_statistics_summaries
from recstack import features as F
from trainer.tensorboard_events import read_scalars, read_tags

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]


def _bytes(counts):
    return {"num_unique": len(counts), "total_count": sum(counts.values()),
            "top_values": [{"value": v, "count": c} for v, c in counts.items()]}  # fmt: skip


TRAIN = {"num_examples": 4, "features": {
    "event": {"kind": "bytes", "kinds": {"bytes": 4}, "num_present": 4, "min_num_values": 1,
              "max_num_values": 1, "bytes": _bytes({"click": 2, "a|b": 1, "view": 1})},
    "hour": {"kind": "int", "kinds": {"int": 3}, "num_present": 3, "min_num_values": 1,
             "max_num_values": 1,
             "numeric": {"count": 3, "min": 3, "max": 11, "mean": 7.0, "std": 3.265986}},
    "mixed": {"kind": "int", "kinds": {"bytes": 1, "int": 2}, "num_present": 3,
              "min_num_values": 0, "max_num_values": 2,
              "numeric": {"count": 2, "min": 7, "max": 8, "mean": 7.5, "std": 0.5},
              "bytes": _bytes({"x" * 30: 1})},
}}  # fmt: skip
STATS = {
    "splits": {"train": TRAIN, "items": {"num_examples": 1, "features": {}}},
    "ingest": {F.STAT_ROWS_IN: 10, F.STAT_DEAD_LETTERS: 3, F.STAT_ITEM_GINI: 0.25},
}


def test_feature_table_rows_escape_and_truncate_top_values():
    assert feature_table(TRAIN, max_top_values=2).splitlines() == [
        "| feature | kind | present | values | min | max | mean | std | unique | top values |",
        "|---|---|---|---|---|---|---|---|---|---|",
        "| event | bytes | 100.0% | 1-1 |  |  |  |  | 3 | click (2), a\\|b (1) |",
        "| hour | int | 75.0% | 1-1 | 3 | 11 | 7 | 3.266 |  |  |",
        f"| mixed | bytes/int | 75.0% | 0-2 | 7 | 8 | 7.5 | 0.5 | 1 | {'x' * 24} (1) |",
    ]


def test_summaries_show_split_sizes_ingest_counts_and_feature_tables(tmp_path):
    write_statistics_summaries(STATS, str(tmp_path))
    assert read_scalars(str(tmp_path))["."] == {
        "statistics/num_examples/train": [(0, 4.0)],
        "statistics/num_examples/items": [(0, 1.0)],
        "ingest/dead_letter_share": [(0, pytest.approx(0.3))],
        f"ingest/{F.STAT_ITEM_GINI}": [(0, pytest.approx(0.25))],
        f"ingest/{F.STAT_ROWS_IN}": [(0, 10.0)],
        f"ingest/{F.STAT_DEAD_LETTERS}": [(0, 3.0)],
    }
    tags = read_tags(str(tmp_path))["."]
    assert {"statistics/features/train", "statistics/features/items"} <= tags


def test_summaries_of_a_real_ingestion(data_dir, tmp_path):
    stats = compute_statistics(data_dir, str(tmp_path / "stats"), IN_MEMORY)
    write_statistics_summaries(stats, str(tmp_path / "logs"))
    scalars = read_scalars(str(tmp_path / "logs"))["."]
    ingest, train = stats["ingest"], stats["splits"]["train"]
    assert scalars["statistics/num_examples/train"] == [(0, float(ingest[F.STAT_TRAIN_ROWS]))]
    share = ingest[F.STAT_DEAD_LETTERS] / ingest[F.STAT_ROWS_IN]
    assert scalars["ingest/dead_letter_share"] == [(0, pytest.approx(share))]
    assert len(feature_table(train).splitlines()) == 2 + len(train["features"])
