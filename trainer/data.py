"""Reading the ingested data: TFRecord datasets, vocabularies and the item corpus."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from recstack import features as F


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """Ids with their training counts, most frequent first.

    Attributes:
      tokens: Ids, `[n]`.
      counts: Training interactions per id, `[n]` int64.
      first_seen: Epoch second of each id's first training interaction, `[n]` int64.
    """

    tokens: tuple[str, ...]
    counts: np.ndarray
    first_seen: np.ndarray

    @property
    def probabilities(self) -> np.ndarray:
        """`[n]` share of training interactions per id (the in-batch sampling probability)."""
        return self.counts / max(int(self.counts.sum()), 1)


def read_vocabulary(path: str) -> Vocabulary:
    """Reads a vocabulary file written by the ingest job (`F.VOCAB_COLUMNS` per line).

    Raises:
      ValueError: a line is malformed (the message gives file and line), or the file is empty.
    """
    tokens, counts, first_seen = [], [], []
    with tf.io.gfile.GFile(path) as f:
        for number, line in enumerate(f, start=1):
            try:
                token, count, first = F.parse_vocabulary_line(line)
            except ValueError as e:
                raise ValueError(f"{path}:{number}: {e}") from None
            tokens.append(token)
            counts.append(count)
            first_seen.append(first)
    if not tokens:
        raise ValueError(f"{path} is empty; was the ingest run on data with a train split?")
    return Vocabulary(
        tuple(tokens), np.asarray(counts, dtype=np.int64), np.asarray(first_seen, dtype=np.int64)
    )


def _files(pattern: str) -> list[str]:
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no TFRecord files match {pattern}; run `recstack ingest` first")
    return files


def make_dataset(
    pattern: str,
    batch_size: int,
    feature_set: tuple[F.Feature, ...] = F.INTERACTION_FEATURES,
    shuffle_buffer: int = 0,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Batches of parsed Examples from gzip TFRecords.

    Args:
      pattern: Glob of TFRecord files (`DataLayout.train_pattern`, ...).
      batch_size: Examples per batch.
      feature_set: Contract features to parse.
      shuffle_buffer: Shuffle buffer size; 0 keeps file order.
      seed: Shuffle seed.

    Returns:
      Dataset of dicts `{name: [batch] tensor}` (ragged `[batch, None]` for list features).
    """
    dataset = tf.data.TFRecordDataset(_files(pattern), compression_type="GZIP")
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    spec = F.tf_parse_spec(feature_set)
    return (
        dataset.batch(batch_size)
        .map(lambda b: tf.io.parse_example(b, spec), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )


def read_columns(
    pattern: str,
    names: tuple[str, ...],
    feature_set: tuple[F.Feature, ...] = F.INTERACTION_FEATURES,
) -> dict[str, np.ndarray]:
    """Reads whole columns of a TFRecord split into memory.

    Returns:
      Dict `{name: [n] numpy array}` (strings decoded to str).
    """
    chosen = tuple(f for f in feature_set if f.name in names)
    columns: dict[str, list] = {name: [] for name in names}
    for batch in make_dataset(pattern, 8192, chosen):
        for name in names:
            columns[name].append(batch[name].numpy())
    result = {}
    for name, parts in columns.items():
        values = np.concatenate(parts) if parts else np.array([])
        if values.dtype == object:
            values = np.array([v.decode("utf-8") for v in values], dtype=object)
        result[name] = values
    return result


def model_features(batch: dict[str, tf.Tensor], history_length: int) -> dict[str, tf.Tensor]:
    """Parsed examples -> model inputs: the history as the dense `[batch, history_length]`
    most recent ids (`history.dense_history`; `[batch, 1]` of padding when history is off),
    the history timestamps dropped."""
    from trainer.history import dense_history

    features = {k: v for k, v in batch.items() if k != F.HISTORY_TIMESTAMPS}
    features[F.HISTORY_ITEM_IDS] = dense_history(batch[F.HISTORY_ITEM_IDS], max(history_length, 1))
    return features


def make_training_dataset(
    pattern: str,
    batch_size: int,
    history_length: int,
    shuffle_buffer: int = 0,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """`make_dataset` of interaction examples mapped through `model_features`: dicts of
    `[batch]` tensors and a `[batch, history_length]` history."""
    dataset = make_dataset(pattern, batch_size, shuffle_buffer=shuffle_buffer, seed=seed)
    if drop_remainder:
        dataset = dataset.unbatch().batch(batch_size, drop_remainder=True)
    return dataset.map(
        lambda b: model_features(b, history_length), num_parallel_calls=tf.data.AUTOTUNE
    ).prefetch(tf.data.AUTOTUNE)
