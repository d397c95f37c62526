"""The feature contract: every name, dtype and file name shared by Beam, trainer and serving.

Beam jobs write what this module names, the trainer parses it with `tf_parse_spec`, the export
step names its signature inputs and outputs from it, and the server and client speak it. Change a
name here and every stage follows; nothing else in the code base spells these strings.

Importing this module touches no file, network or TensorFlow (TensorFlow is imported lazily by
`tf_parse_spec` only).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

# --- Raw input columns (the data contract of DESIGN.md) -------------------------------------
USER_ID = "user_id"
ITEM_ID = "item_id"
TIMESTAMP = "timestamp"
EVENT = "event"
VALUE = "value"

TITLE = "title"
DESCRIPTION = "description"
CATEGORIES = "categories"

# --- Derived interaction features (written by `recstack ingest`) -------------------------------
#: Training target of an event (config `ingest.event_labels`; 1.0 for implicit feedback).
LABEL = "label"
#: Example weight of an event (config `ingest.event_weights`; default 1.0).
WEIGHT = "weight"
#: The user's most recent item ids strictly before this event, oldest first (at most
#: `ingest.history_length`); never includes the event itself or anything later.
HISTORY_ITEM_IDS = "history_item_ids"
#: Epoch seconds of the events in `HISTORY_ITEM_IDS`, aligned with it.
HISTORY_TIMESTAMPS = "history_timestamps"
#: Hour of day (0-23, UTC) and day of week (0 = Monday, UTC) of the event.
HOUR = "hour"
WEEKDAY = "weekday"
#: `weekday` of epoch second 0 (1970-01-01, a Thursday; 0 = Monday): weekday = (t // 86400 +
#: EPOCH_WEEKDAY) % 7, hour = t // 3600 % 24, both UTC.
EPOCH_WEEKDAY = 3

#: Separator accepted for categories given as one string ("jazz|blues").
CATEGORY_SEPARATOR = "|"

#: Event types the generator emits; the ingestion accepts any non-empty event string.
EVENT_TYPES = ("view", "click", "purchase")

DTYPE_STRING = "string"
DTYPE_INT64 = "int64"
DTYPE_FLOAT32 = "float32"


@dataclasses.dataclass(frozen=True)
class Feature:
    """One feature of a `tf.train.Example`.

    Attributes:
      name: Feature key in the Example and in the trainer's feature dict.
      dtype: One of "string", "int64", "float32".
      var_len: True for a list feature of any length (parsed as a dense, padded tensor).
      default: Value written and parsed when the feature is absent (`()` for an empty list);
        None makes it required.
    """

    name: str
    dtype: str
    var_len: bool = False
    default: Any = None

    def __post_init__(self) -> None:
        if self.dtype not in (DTYPE_STRING, DTYPE_INT64, DTYPE_FLOAT32):
            raise ValueError(
                f"Feature {self.name!r} has dtype {self.dtype!r}; use 'string', 'int64' or "
                "'float32'"
            )


#: One interaction per Example in the train/eval TFRecords.
INTERACTION_FEATURES: tuple[Feature, ...] = (
    Feature(USER_ID, DTYPE_STRING),
    Feature(ITEM_ID, DTYPE_STRING),
    Feature(TIMESTAMP, DTYPE_INT64),
    Feature(EVENT, DTYPE_STRING),
    Feature(VALUE, DTYPE_FLOAT32, default=0.0),
    Feature(LABEL, DTYPE_FLOAT32, default=1.0),
    Feature(WEIGHT, DTYPE_FLOAT32, default=1.0),
    Feature(HISTORY_ITEM_IDS, DTYPE_STRING, var_len=True, default=()),
    Feature(HISTORY_TIMESTAMPS, DTYPE_INT64, var_len=True, default=()),
    Feature(HOUR, DTYPE_INT64, default=0),
    Feature(WEEKDAY, DTYPE_INT64, default=0),
)

#: One catalog item per Example in the item-corpus TFRecords (includes cold items).
ITEM_FEATURES: tuple[Feature, ...] = (
    Feature(ITEM_ID, DTYPE_STRING),
    Feature(TITLE, DTYPE_STRING, default=""),
    Feature(DESCRIPTION, DTYPE_STRING, default=""),
    Feature(CATEGORIES, DTYPE_STRING, var_len=True),
)


def user_features(attributes: tuple[str, ...]) -> tuple[Feature, ...]:
    """Returns the Example contract of the users TFRecords: `user_id` and each attribute.

    Attributes come from the optional users table, named by `ingest.user_attributes`; every
    attribute is a categorical string ("" when the table has no value for the user).
    """
    return (Feature(USER_ID, DTYPE_STRING),) + tuple(
        Feature(name, DTYPE_STRING, default="") for name in attributes
    )


def tf_parse_spec(features: tuple[Feature, ...]) -> dict[str, Any]:
    """Returns the `tf.io.parse_example` spec for `features`.

    Fixed-length features parse to shape `[batch]`; var-len features to a `tf.RaggedTensor` of
    shape `[batch, None]`.
    """
    import tensorflow as tf  # Lazy: Beam workers and the CLI's --help need no TensorFlow.

    tf_dtypes = {DTYPE_STRING: tf.string, DTYPE_INT64: tf.int64, DTYPE_FLOAT32: tf.float32}
    spec: dict[str, Any] = {}
    for feature in features:
        dtype = tf_dtypes[feature.dtype]
        if feature.var_len:
            spec[feature.name] = tf.io.RaggedFeature(dtype)
        else:
            spec[feature.name] = tf.io.FixedLenFeature([], dtype, default_value=feature.default)
    return spec


# --- Files written by `recstack generate` -----------------------------------------------------
RAW_INTERACTIONS_FILE = "interactions.jsonl"
RAW_ITEMS_FILE = "items.jsonl"
RAW_USERS_FILE = "users.jsonl"
#: The planted structure (topics of users and items), for tests and quality benchmarks.
RAW_TRUTH_FILE = "truth.json"

# --- Files written by `recstack ingest` (all under one data directory) ------------------------
TRAIN_PREFIX = "train"
EVAL_PREFIX = "eval"
TEST_PREFIX = "test"
ITEMS_PREFIX = "items"
#: Users table: one Example per user with its attributes (`user_features`).
USERS_PREFIX = "users"
TFRECORD_SUFFIX = ".tfrecord.gz"
USER_VOCAB_FILE = "vocab_user_id.tsv"
ITEM_VOCAB_FILE = "vocab_item_id.tsv"
STATS_FILE = "stats.json"
DEAD_LETTER_PREFIX = "dead_letters"
DEAD_LETTER_SUFFIX = ".jsonl"
#: The readable statistics table printed at the end of an ingestion.
SUMMARY_FILE = "summary.txt"

#: Columns of a vocabulary line, tab-separated: the id, its number of train events, and the
#: epoch second of its first train event (for sampling-bias correction and warm starts).
VOCAB_COLUMNS = ("token", "count", "first_seen")


def format_vocabulary_line(token: str, count: int, first_seen: int) -> str:
    """Returns one vocabulary line, `token<TAB>count<TAB>first_seen` plus a newline."""
    return f"{token}\t{count}\t{first_seen}\n"


def parse_vocabulary_line(line: str) -> tuple[str, int, int]:
    """Returns `(token, count, first_seen)` of one vocabulary line (with or without newline).

    Raises:
      ValueError: the line does not have the three `VOCAB_COLUMNS` with integer count and time.
    """
    parts = line.rstrip("\n").split("\t")
    if len(parts) != len(VOCAB_COLUMNS) or not parts[0]:
        raise ValueError(f"expected {'<TAB>'.join(VOCAB_COLUMNS)}, got {line!r}")
    try:
        return parts[0], int(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError(f"expected integer count and first_seen, got {line!r}") from None


@dataclasses.dataclass(frozen=True)
class DataLayout:
    """Paths of one ingested data directory (local path or `gs://...`)."""

    root: str

    def pattern(self, prefix: str) -> str:
        """Glob of the TFRecord shards written under `prefix` (e.g. `TRAIN_PREFIX`)."""
        return os.path.join(self.root, f"{prefix}-*{TFRECORD_SUFFIX}")

    @property
    def train_pattern(self) -> str:
        return self.pattern(TRAIN_PREFIX)

    @property
    def eval_pattern(self) -> str:
        return self.pattern(EVAL_PREFIX)

    @property
    def test_pattern(self) -> str:
        return self.pattern(TEST_PREFIX)

    @property
    def items_pattern(self) -> str:
        return self.pattern(ITEMS_PREFIX)

    @property
    def users_pattern(self) -> str:
        return self.pattern(USERS_PREFIX)

    @property
    def user_vocab(self) -> str:
        return os.path.join(self.root, USER_VOCAB_FILE)

    @property
    def item_vocab(self) -> str:
        return os.path.join(self.root, ITEM_VOCAB_FILE)

    @property
    def stats(self) -> str:
        return os.path.join(self.root, STATS_FILE)

    @property
    def summary(self) -> str:
        return os.path.join(self.root, SUMMARY_FILE)

    @property
    def dead_letter_pattern(self) -> str:
        return os.path.join(self.root, f"{DEAD_LETTER_PREFIX}-*{DEAD_LETTER_SUFFIX}")


# --- Keys of stats.json ------------------------------------------------------------------------
STAT_ROWS_IN = "rows_in"
STAT_ROWS_WRITTEN = "rows_written"
STAT_DEAD_LETTERS = "dead_letters"
#: Exact duplicate events (same user, item, timestamp, event and value) dropped; the accounting
#: is rows_in = rows_written + dead_letters + duplicates_dropped.
STAT_DUPLICATES_DROPPED = "duplicates_dropped"
STAT_TRAIN_ROWS = "train_rows"
STAT_EVAL_ROWS = "eval_rows"
STAT_TEST_ROWS = "test_rows"
STAT_USERS = "users"
STAT_ITEMS = "items"
STAT_CATALOG_ITEMS = "catalog_items"
STAT_CATALOG_DEAD_LETTERS = "catalog_dead_letters"
#: Users table rows written (one per distinct user id) and rejected.
STAT_USER_ROWS = "user_rows"
STAT_USER_DEAD_LETTERS = "user_dead_letters"
#: The users table's attribute names, in the order of `user_features`.
STAT_USER_ATTRIBUTES = "user_attributes"
STAT_SPLIT_TIMESTAMP = "split_timestamp"
STAT_TEST_SPLIT_TIMESTAMP = "test_split_timestamp"
STAT_SPLIT_METHOD = "split_method"
#: Dataset statistics (see `beam_jobs.data_stats`).
STAT_EVENTS_PER_SPLIT = "events_per_split"
STAT_DISTINCT_USERS = "distinct_users"
STAT_DISTINCT_ITEMS = "distinct_items"
STAT_EVENTS_PER_USER = "events_per_user"
STAT_ITEM_GINI = "item_popularity_gini"
STAT_SPARSITY = "sparsity"
STAT_COLD_ITEM_SHARE = "cold_item_share"

# --- Serving contract ----------------------------------------------------------------------------
MODEL_RETRIEVAL = "retrieval"
MODEL_RANKING = "ranking"
MODEL_RECOMMENDER = "recommender"
SERVING_SIGNATURE = "serving_default"
#: Exported models, in the order they are written.
SERVED_MODELS = (MODEL_RETRIEVAL, MODEL_RANKING, MODEL_RECOMMENDER)
#: Signature input of every model: user ids, string tensor of shape [batch].
INPUT_USER_ID = USER_ID
#: `ranking` input: candidate item ids to score, string [batch, n].
INPUT_ITEM_IDS = "item_ids"
#: `recommender` inputs: items per user, int32 [batch]; MMR diversity weight in [0, 1],
#: float32 [batch]; items never to return, string [batch, m] ("" pads rows).
INPUT_K = "k"
INPUT_MMR_LAMBDA = "mmr_lambda"
INPUT_EXCLUDE_ITEM_IDS = "exclude_item_ids"
#: Signature outputs, each of shape [batch, k] (`ranking`: [batch, n], no item_ids).
OUTPUT_ITEM_IDS = "item_ids"
OUTPUT_SCORES = "scores"
OUTPUT_TITLES = "titles"
#: Written beside saved_model.pb in every exported version.
EXPORT_METADATA_FILE = "recstack_metadata.json"

# --- Item text embeddings (written by `beam_jobs.embed_text`) ------------------------------------
# One output directory holds `<EMBEDDINGS_PREFIX>-*<TFRECORD_SUFFIX>` shards of
# `EMBEDDING_FEATURES` Examples (one per catalog item) and `EMBEDDINGS_META_FILE`.
#: The item's frozen text vector, a float list of the encoder's dimension.
ITEM_EMBEDDING = "embedding"
EMBEDDINGS_PREFIX = "embeddings"
EMBEDDINGS_META_FILE = "embeddings_meta.json"
#: One item per Example in the embeddings TFRecords.
EMBEDDING_FEATURES: tuple[Feature, ...] = (
    Feature(ITEM_ID, DTYPE_STRING),
    Feature(ITEM_EMBEDDING, DTYPE_FLOAT32, var_len=True),
)
#: Keys of embeddings_meta.json: vector dimension, number of items, the encoder SavedModel's
#: path and the `recstack.text.TEXT_RECIPE` the texts were built with.
META_DIM = "dim"
META_COUNT = "count"
META_MODEL = "model"
META_TEXT_RECIPE = "text_recipe"
# --- End of item text embeddings --------------------------------------------------------------
