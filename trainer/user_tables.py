"""What the exported models know about each user: recent items (the query tower's history) and
every item already seen (for excluding them from recommendations), as in-graph tables.

Built at export time from the ingested interactions of every split, so a served model needs
only a user id: `query_features` fills in the rest of the query tower's inputs.
"""

from __future__ import annotations

import tensorflow as tf

from recstack import features as F
from trainer import data
from trainer.history import dense_history

#: Joins a user's items in one table value (a control character, never in ids).
SEPARATOR = "\x1f"


def string_table(keys: list[str], values: list[str]) -> tf.lookup.StaticHashTable:
    """A string -> string table with default ""; an empty `keys` gives a table that answers ""
    for every key."""
    if not keys:  # A table needs one entry; this one is never asked for.
        keys, values = [SEPARATOR], [""]
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values)),
        default_value="",
    )


def _split(joined: tf.Tensor) -> tf.RaggedTensor:
    """`[batch]` separator-joined strings -> `[batch, None]` items (no empty ones)."""
    parts = tf.strings.split(joined, SEPARATOR)
    return tf.ragged.boolean_mask(parts, tf.not_equal(parts, ""))


#: The ingested splits, in time order.
SPLITS = (F.TRAIN_PREFIX, F.EVAL_PREFIX, F.TEST_PREFIX)


def user_items(layout: F.DataLayout, splits: tuple[str, ...] = SPLITS) -> dict[str, list[str]]:
    """Each user's interacted items over the ingested `splits` (default: all), oldest first
    (ties by item id); an item appears once per interaction.

    Raises:
      ValueError: an unknown split name.
    """
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; the splits are {list(SPLITS)}")
    events: dict[str, list[tuple[int, str]]] = {}
    for pattern in (layout.pattern(split) for split in splits):
        if not tf.io.gfile.glob(pattern):
            continue
        columns = data.read_columns(pattern, (F.USER_ID, F.ITEM_ID, F.TIMESTAMP))
        for user, item, timestamp in zip(
            columns[F.USER_ID], columns[F.ITEM_ID], columns[F.TIMESTAMP], strict=True
        ):
            events.setdefault(user, []).append((int(timestamp), item))
    return {user: [item for _, item in sorted(pairs)] for user, pairs in events.items()}


class UserTables(tf.Module):
    """Per-user tables of an exported model.

    Args:
      items: Each user's items, oldest first (`user_items`).
      history_length: Items of the query tower's history (the most recent ones).
      keep_seen: Also keep every distinct item of each user, for `seen`.
    """

    def __init__(
        self, items: dict[str, list[str]], history_length: int, keep_seen: bool = False
    ) -> None:
        super().__init__()
        self.history_length = max(history_length, 1)
        users = list(items)
        self.histories = string_table(
            users, [SEPARATOR.join(items[u][-self.history_length :]) for u in users]
        )
        self.seen_items = None
        if keep_seen:
            self.seen_items = string_table(
                users, [SEPARATOR.join(dict.fromkeys(items[u])) for u in users]
            )

    def query_features(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        """`[batch]` user ids -> the query tower's features, looked up and timed now: the
        history `[batch, history_length]` (padded; empty for an unknown user) and the hour and
        weekday of the request (UTC) `[batch]`."""
        history = _split(self.histories.lookup(user_id))
        seconds = tf.cast(tf.timestamp(), tf.int64)
        batch = tf.shape(user_id, out_type=tf.int64)[0]
        return {
            F.USER_ID: user_id,
            F.HISTORY_ITEM_IDS: dense_history(history, self.history_length),
            F.HOUR: tf.fill([batch], seconds // 3600 % 24),
            F.WEEKDAY: tf.fill([batch], (seconds // 86400 + F.EPOCH_WEEKDAY) % 7),
        }

    def seen(self, user_id: tf.Tensor) -> tf.RaggedTensor:
        """`[batch]` user ids -> `[batch, None]` distinct items each user interacted with
        (none for unknown users, or when the tables were built without `keep_seen`)."""
        if self.seen_items is None:
            return tf.RaggedTensor.from_row_lengths(
                tf.zeros([0], tf.string), tf.zeros(tf.shape(user_id), tf.int64)
            )
        return _split(self.seen_items.lookup(user_id))
