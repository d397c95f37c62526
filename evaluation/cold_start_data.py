"""Cold-start data: a copy of an ingested data directory with a random set of items out of
training.

`hold_out_items` draws items among those users interact with in the eval split, drops their
train rows, strips them from every train history and recounts the item vocabulary without them;
the catalog, eval and test splits and every other file are copied unchanged, so the held-out
items stay retrievable through their text and categories. `evaluation.cold_start` trains and
evaluates on the result.

Sizes: the train split is rewritten example by example in this process (about 10 µs per row),
fine for millions of rows; beyond that, run the same filter as a Beam job.
"""

from __future__ import annotations

import collections
import os

import numpy as np
import tensorflow as tf

from beam_jobs.vocab import format_vocabulary
from recstack import features as F
from trainer import data, files

#: Key of the `stats.json` entry describing the hold-out.
STAT_COLD_START = "cold_start"


def hold_out_items(
    data_dir: str,
    output_dir: str,
    fraction: float = 0.1,
    seed: int = 0,
    min_eval_interactions: int = 1,
) -> list[str]:
    """Writes a copy of an ingested data directory with a random set of items out of training.

    The candidates are the catalog items with at least `min_eval_interactions` eval-split rows
    (so each held-out item has something to retrieve; items already without train rows count
    too). In `output_dir`, train shards (same file names) lose every row of a held-out item and
    every held-out id in `history_item_ids`, with its `history_timestamps` entry; the item
    vocabulary is recounted from the kept train rows (count and first train second, ingest's
    order); `stats.json` gets the new `train_rows` and `items` and a `cold_start` entry
    (`held_out_items`, `fraction`, `seed`, `min_eval_interactions`, `train_rows_dropped`,
    `source`). Every other file (catalog, eval/test splits, users, user vocabulary, dead
    letters, summary) is copied byte for byte; user vocabulary counts therefore still include
    the dropped rows, so every user keeps their embedding row.

    Args:
      data_dir: Output directory of `recstack ingest` (local path or `gs://...`).
      output_dir: Where to write the derived directory; must be missing or empty.
      fraction: Share of the candidate items held out, in (0, 1]; at least one item.
      seed: Seed of the draw (the same seed and data give the same items).
      min_eval_interactions: Eval rows an item needs to be a candidate.

    Returns:
      The held-out item ids, sorted.

    Raises:
      ValueError: `fraction` outside (0, 1], or no catalog item has enough eval rows.
      FileExistsError: `output_dir` holds files.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction} must be in (0, 1]; e.g. 0.1 holds out 10%")
    if tf.io.gfile.exists(output_dir) and tf.io.gfile.listdir(output_dir):
        raise FileExistsError(f"{output_dir} is not empty; pass a new or empty output directory")
    layout = F.DataLayout(data_dir)
    catalog = data.read_columns(layout.items_pattern, (F.ITEM_ID,), F.ITEM_FEATURES)[F.ITEM_ID]
    eval_counts = collections.Counter(
        data.read_columns(layout.eval_pattern, (F.ITEM_ID,))[F.ITEM_ID]
    )
    eligible = sorted(item for item in set(catalog) if eval_counts[item] >= min_eval_interactions)
    if not eligible:
        raise ValueError(
            f"no catalog item of {data_dir} has {min_eval_interactions} or more eval rows; "
            "lower min_eval_interactions or ingest with a longer eval period"
        )
    count = max(1, round(fraction * len(eligible)))
    rng = np.random.default_rng(seed)
    held_out = sorted(rng.choice(eligible, size=count, replace=False).tolist())
    out = F.DataLayout(output_dir)
    files.ensure_dir(output_dir)
    kept, dropped, vocab = _write_train(layout.train_pattern, output_dir, set(held_out))
    with tf.io.gfile.GFile(out.item_vocab, "w") as f:
        f.write(format_vocabulary(vocab))
    rewritten = {os.path.basename(p) for p in tf.io.gfile.glob(layout.train_pattern)}
    rewritten |= {F.ITEM_VOCAB_FILE, F.STATS_FILE}
    _copy_tree(data_dir, output_dir, skip=rewritten)
    stats = files.read_json(layout.stats)
    stats[F.STAT_TRAIN_ROWS], stats[F.STAT_ITEMS] = kept, len(vocab)
    stats[STAT_COLD_START] = {
        "held_out_items": held_out, "fraction": fraction, "seed": seed,
        "min_eval_interactions": min_eval_interactions, "train_rows_dropped": dropped,
        "source": data_dir,
    }  # fmt: skip
    files.write_json(out.stats, stats)
    return held_out


def _write_train(
    pattern: str, output_dir: str, held_out: set[str]
) -> tuple[int, int, list[tuple[str, int, int]]]:
    """Rewrites each train shard under `output_dir` without `held_out`; returns `(rows kept,
    rows dropped, vocabulary entries (item, count, first_seen) of the kept rows)`."""
    held = {item.encode("utf-8") for item in held_out}
    counts: collections.Counter[str] = collections.Counter()
    first_seen: dict[str, int] = {}
    kept = dropped = 0
    for path in sorted(tf.io.gfile.glob(pattern)):
        target = os.path.join(output_dir, os.path.basename(path))
        with tf.io.TFRecordWriter(target, options="GZIP") as writer:
            for record in tf.data.TFRecordDataset(path, compression_type="GZIP"):
                example = tf.train.Example.FromString(record.numpy())
                feature = example.features.feature
                item = feature[F.ITEM_ID].bytes_list.value[0]
                if item in held:
                    dropped += 1
                    continue
                _strip_history(example, held, path)
                writer.write(example.SerializeToString(deterministic=True))
                kept += 1
                token, timestamp = item.decode("utf-8"), feature[F.TIMESTAMP].int64_list.value[0]
                counts[token] += 1
                first_seen[token] = min(first_seen.get(token, timestamp), timestamp)
    return kept, dropped, [(token, n, first_seen[token]) for token, n in counts.items()]


def _strip_history(example: tf.train.Example, held: set[bytes], path: str) -> None:
    """Removes the held-out ids, and their timestamps, from the example's history."""
    feature = example.features.feature
    if F.HISTORY_ITEM_IDS not in feature:  # Reading a missing map key would add it.
        return
    ids = feature[F.HISTORY_ITEM_IDS].bytes_list.value
    times = feature[F.HISTORY_TIMESTAMPS].int64_list.value
    if len(ids) != len(times):
        raise ValueError(
            f"{path}: an example has {len(ids)} history ids but {len(times)} history "
            "timestamps; re-run `recstack ingest` on this data"
        )
    if not held.intersection(ids):
        return
    pairs = [(i, t) for i, t in zip(ids, times, strict=True) if i not in held]
    ids[:] = [i for i, _ in pairs]
    times[:] = [t for _, t in pairs]


def _copy_tree(source: str, target: str, skip: set[str]) -> None:
    """Copies every file under `source` to the same relative path under `target`, except the
    top-level files named in `skip`."""
    for directory, _, names in tf.io.gfile.walk(source):
        relative = os.path.relpath(directory, source)
        destination = files.ensure_dir(
            target if relative == "." else os.path.join(target, relative)
        )
        for name in names:
            if relative == "." and name in skip:
                continue
            tf.io.gfile.copy(os.path.join(directory, name), os.path.join(destination, name))
