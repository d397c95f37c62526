"""Cold-start evaluation: items removed from training entirely, retrieved through the text tower.

`hold_out_items` derives a data directory in which a random share of the items that users
interact with in the eval split never occur in training: their train rows are dropped, they are
stripped from every train history, and the item vocabulary is recounted without them. They stay
in the catalog (with their title, description and categories), so the candidate tower still
embeds them: from text and categories, with the shared OOV id row. `evaluate_cold_start` trains
a text model and an id-only model on the derived data and measures, on the eval users who
interacted with a held-out item, how well each retrieves those items from the whole catalog,
next to random scores.

Eval and test splits are copied unchanged, so an eval history may still name a held-out item
the user saw before the split: that is their real past at serving time. The history encoder
looks items up by id only, so such an item maps to the OOV row and carries no text signal.

Sizes: the train split is rewritten example by example in this process (about 10 µs per row),
fine for millions of rows; beyond that, run the same filter as a Beam job.
"""

from __future__ import annotations

import collections
import dataclasses
import os
from collections.abc import Callable, Sequence

import numpy as np
import tensorflow as tf

from beam_jobs.vocab import format_vocabulary
from evaluation.baselines import random_scorer
from evaluation.metrics import accuracy_metrics, check_ks
from evaluation.sources import lists_from_scorer
from recstack import config as config_lib
from recstack import features as F
from trainer import data, files
from trainer.config import TEXT_NONE, TrainConfig
from trainer.evaluation import EvalSet, build_eval_set, embedding_scorer

#: Key of the `stats.json` entry describing the hold-out.
STAT_COLD_START = "cold_start"
#: Systems of `ColdStartResult.metrics`, in report order.
TEXT_MODEL, ID_ONLY, RANDOM = "text_model", "id_only", "random"
#: Metric families reported per cut-off (`evaluation.metrics.accuracy_metrics` names).
METRIC_FAMILIES = ("recall", "ndcg", "hit_rate")


def metric_names(ks: Sequence[int]) -> list[str]:
    """`recall@k`, `ndcg@k` and `hit_rate@k` for every cut-off, in report order."""
    return [f"{family}@{k}" for family in METRIC_FAMILIES for k in ks]


@dataclasses.dataclass(frozen=True)
class ColdStartResult:
    """What `evaluate_cold_start` measured.

    Attributes:
      metrics: `{system: {metric: value}}` for `TEXT_MODEL`, `ID_ONLY` and `RANDOM` on the cold
        eval set (`metric_names(ks)`); the shape of `EvaluationReport.cold_start`.
      held_out: The held-out item ids, sorted.
      cold_users: Eval users with at least one held-out item (the users averaged over).
      catalog_items: Candidates per user (the whole catalog); random recall@k is about
        k / (catalog_items - the user's training items).
    """

    metrics: dict[str, dict[str, float]]
    held_out: tuple[str, ...]
    cold_users: int
    catalog_items: int

    def to_dict(self) -> dict[str, dict[str, float]]:
        """JSON-ready form: the systems' metrics plus `meta` with the counts."""
        meta = {"held_out_items": len(self.held_out), "cold_users": self.cold_users,
                "catalog_items": self.catalog_items}  # fmt: skip
        return {**self.metrics, "meta": meta}


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


def cold_eval_set(layout: F.DataLayout, held_out: Sequence[str], history_length: int) -> EvalSet:
    """The eval set of `trainer.evaluation.build_eval_set` restricted to cold items.

    Candidates are the whole catalog and each user's training items are excluded, as usual;
    only users with at least one held-out item among their eval items are kept, and their
    relevant sets hold the held-out items only.

    Args:
      layout: The derived data directory (`hold_out_items` output).
      held_out: The held-out item ids.
      history_length: Query history length of the evaluated model.

    Raises:
      ValueError: a held-out id is not in the catalog, or no eval user has a held-out item.
    """
    full = build_eval_set(layout, history_length)
    index = {item: i for i, item in enumerate(full.corpus_ids)}
    missing = [item for item in held_out if item not in index]
    if missing:
        raise ValueError(f"held-out items {missing[:3]} are not in the catalog {layout.root}")
    cold = {index[item] for item in held_out}
    relevant = [wanted & cold for wanted in full.relevant]
    rows = [r for r, wanted in enumerate(relevant) if wanted]
    if not rows:
        raise ValueError(
            f"no eval user of {layout.root} interacted with any of the {len(cold)} held-out "
            "items; hold out more items or use a longer eval period"
        )
    return EvalSet(
        corpus_ids=full.corpus_ids,
        popularity=full.popularity,
        users=full.users[rows],
        exclude=[full.exclude[r] for r in rows],
        relevant=[relevant[r] for r in rows],
        queries={name: values[rows] for name, values in full.queries.items()},
    )


def evaluate_cold_start(
    data_dir: str,
    work_dir: str,
    text_config_mode: str = "frozen",
    fraction: float = 0.1,
    seed: int = 0,
    ks: Sequence[int] = (10, 50, 100),
    train_overrides: dict | None = None,
) -> ColdStartResult:
    """Holds items out, trains a text and an id-only model without them, and scores both.

    Writes `work_dir/data` (the derived data), `work_dir/text_model` and `work_dir/id_only`
    (training runs). Both models share the `TrainConfig` built from `train_overrides` (the
    `train` section's keys, nested sections as dicts) except `text.mode`: `text_config_mode`
    for the text model, `none` for the id-only one. The id-only model still sees the items'
    categories unless `use_categories` is false; its cold items otherwise share the OOV row.

    Args:
      data_dir: Output directory of `recstack ingest`.
      work_dir: Missing or empty directory for the derived data and the runs.
      text_config_mode: `TextConfig.mode` of the text model (not `none`).
      fraction, seed: Passed to `hold_out_items`.
      ks: Cut-offs.
      train_overrides: TrainConfig fields; None trains with the defaults.

    Returns:
      The metrics of the text model, the id-only model and random scores on `cold_eval_set`.

    Raises:
      ValueError: `text_config_mode` is `none`, or the arguments of `hold_out_items` or of
        `TrainConfig` are invalid.
    """
    from trainer.train import train  # Lazy: importing the trainer builds Keras layers.

    ks = check_ks(ks)  # Before hours of training, not after.
    if text_config_mode == TEXT_NONE:
        raise ValueError("text_config_mode='none' has no text tower; use 'frozen' or a fine-tune")
    base = config_lib.from_dict(TrainConfig, train_overrides or {})
    configs = {
        TEXT_MODEL: dataclasses.replace(
            base, text=dataclasses.replace(base.text, mode=text_config_mode)
        ),
        ID_ONLY: dataclasses.replace(base, text=dataclasses.replace(base.text, mode=TEXT_NONE)),
    }
    derived = os.path.join(work_dir, "data")
    held_out = hold_out_items(data_dir, derived, fraction, seed)
    eval_set = cold_eval_set(F.DataLayout(derived), held_out, base.query.history_length)
    metrics = {}
    for system, config in configs.items():
        run_dir = os.path.join(work_dir, system)
        train(config, derived, run_dir, verbose=0)
        metrics[system] = _run_metrics(run_dir, eval_set, ks)
    metrics[RANDOM] = _metrics(random_scorer(eval_set, seed), eval_set, ks)
    return ColdStartResult(metrics, tuple(held_out), len(eval_set.users), len(eval_set.corpus_ids))


def _run_metrics(run_dir: str, eval_set: EvalSet, ks: Sequence[int]) -> dict[str, float]:
    """Metrics of a finished run's restored model, scoring the whole catalog exactly."""
    from trainer.train import restore_model

    model, _, _ = restore_model(run_dir)
    scorer = embedding_scorer(
        model.embed_queries(eval_set.queries), model.embed_items(eval_set.corpus_ids)
    )
    return _metrics(scorer, eval_set, ks)


def _metrics(
    scorer: Callable[[np.ndarray], np.ndarray], eval_set: EvalSet, ks: Sequence[int]
) -> dict[str, float]:
    """`metric_names(ks)` of the scorer's top `max(ks)` lists (training items excluded)."""
    top, _ = lists_from_scorer(scorer, eval_set, max(ks))
    values = accuracy_metrics(top, eval_set.relevant, ks)
    return {name: values[name] for name in metric_names(ks)}
