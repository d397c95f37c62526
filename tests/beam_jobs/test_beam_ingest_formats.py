"""The whole job on CSV input with the user's own column names, configured from YAML."""

import glob

import tensorflow as tf

from beam_jobs.ingest import load_config, run_ingest
from recstack import features as F


def test_csv_with_column_mapping_from_yaml(tmp_path):
    config_path = tmp_path / "c.yaml"
    config_path.write_text(
        "ingest:\n  input_format: csv\n  eval_days: 1\n"
        "  interaction_columns: {user_id: userId, item_id: movieId, timestamp: ts}\n"
        "  item_columns: {item_id: movieId}\n"
    )
    config = load_config(str(config_path))
    day = 86400
    log = tmp_path / "ratings.csv"
    log.write_text(
        "userId,movieId,ts,event\n"
        f"1,10,{5 * day},rating\n"
        f"1,11,{6 * day},rating\n"
        f"2,10,{9 * day},rating\n"
        f"2,,{9 * day},rating\n"  # Missing item id: dead letter on line 5.
    )
    items = tmp_path / "movies.csv"
    items.write_text('movieId,title,categories\n10,"Heat, 1995",Crime|Drama\n11,Up,Animation\n')
    out = str(tmp_path / "data")
    stats = run_ingest(config, str(log), str(items), out, ["--direct_running_mode=in_memory"])
    assert (stats[F.STAT_ROWS_IN], stats[F.STAT_TRAIN_ROWS], stats[F.STAT_EVAL_ROWS]) == (4, 2, 1)
    assert stats[F.STAT_DEAD_LETTERS] == 1 and stats[F.STAT_CATALOG_ITEMS] == 2
    layout = F.DataLayout(out)
    records = list(tf.data.TFRecordDataset(glob.glob(layout.eval_pattern), compression_type="GZIP"))
    parsed = tf.io.parse_example(tf.stack(records), F.tf_parse_spec(F.INTERACTION_FEATURES))
    assert parsed[F.USER_ID].numpy().tolist() == [b"2"]
    assert parsed[F.HISTORY_ITEM_IDS].to_list() == [[]]
    corpus = list(tf.data.TFRecordDataset(glob.glob(layout.items_pattern), compression_type="GZIP"))
    titles = tf.io.parse_example(tf.stack(corpus), F.tf_parse_spec(F.ITEM_FEATURES))[F.TITLE]
    assert sorted(titles.numpy().tolist()) == [b"Heat, 1995", b"Up"]
