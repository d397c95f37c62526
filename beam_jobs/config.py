"""Configuration of the ingestion job (section `ingest` of the YAML files in `tfx_config/`)."""

from __future__ import annotations

import dataclasses
import math

from beam_jobs.columns import ColumnMapping

#: Seconds per day, for turning `eval_days` into a timestamp offset.
SECONDS_PER_DAY = 86400
#: Values of `IngestConfig.split_method` (see `beam_jobs.split`).
SPLIT_TIME = "time"
SPLIT_LEAVE_LAST_OUT = "leave_last_out"


@dataclasses.dataclass(frozen=True)
class IngestConfig:
    """How raw interaction logs and the item catalog become training data.

    Attributes:
      split_method: "time" (global cutoffs) or "leave_last_out" (per user: the latest event is
        test, the one before eval, the rest train; users with < 3 events stay in train).
      eval_days: Time split: length of the evaluation window in days. Without a test split,
        interactions with `timestamp >= max_timestamp - eval_days * 86400` form the eval split,
        where `max_timestamp` is the latest valid interaction; with one, the eval window is
        the `eval_days` before the test window. Earlier interactions form the train split.
      test_days: Time split: length of the test window at the end, in days; 0 (default) for no
        test split (the test files are then empty).
      split_timestamp: Absolute eval cutoff in epoch seconds (eval is `timestamp >=
        split_timestamp`); when set it overrides `eval_days`, which makes splits reproducible
        as data grows.
      test_timestamp: Absolute test cutoff in epoch seconds; overrides `test_days`.
      strict_catalog: Send interactions whose `item_id` is not in the catalog to the dead
        letters. When False they are kept (the item then has no text features).
      direct_num_workers: Worker processes of the local DirectRunner (ignored by other runners).
      num_shards: TFRecord shards per split; 0 lets the runner choose.
      history_length: Items of each event's history feature (the user's latest earlier items).
      event_labels: Event type -> label, a number or "value" (the row's value, e.g. ratings).
        Empty: every event is positive implicit feedback (label 1.0). When set, events not
        listed go to the dead letters.
      event_weights: Event type -> example weight (default 1.0), e.g. purchase 1.0, view 0.1.
      input_format: "jsonl", "csv", "parquet", or "auto" (by file extension); `.gz` is read
        transparently.
      interaction_columns: Contract name -> source column name for the interaction files,
        e.g. {user_id: userId, item_id: movieId}; unmapped names are read as they are.
      item_columns: The same for the catalog files.
      user_attributes: Columns of the optional users table kept as categorical user features
        (e.g. [country, age_band]); written with `user_id` to the users TFRecords.
      user_columns: Contract name -> source column name for the users table.
    """

    split_method: str = SPLIT_TIME
    eval_days: float = 7.0
    test_days: float = 0.0
    split_timestamp: int | None = None
    test_timestamp: int | None = None
    strict_catalog: bool = True
    direct_num_workers: int = 2
    num_shards: int = 0
    history_length: int = 20
    event_labels: dict[str, float | str] = dataclasses.field(default_factory=dict)
    event_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    input_format: str = "jsonl"
    interaction_columns: ColumnMapping = dataclasses.field(default_factory=ColumnMapping)
    item_columns: ColumnMapping = dataclasses.field(default_factory=ColumnMapping)
    user_attributes: tuple[str, ...] = ()
    user_columns: ColumnMapping = dataclasses.field(default_factory=ColumnMapping)

    def __post_init__(self) -> None:
        from beam_jobs import readers
        from beam_jobs.labels import validate_event_labels

        readers.check_format(self.input_format)
        for name in ("interaction_columns", "item_columns", "user_columns"):
            value = getattr(self, name)
            if isinstance(value, dict):  # From YAML.
                object.__setattr__(self, name, ColumnMapping.from_dict(value))

        validate_event_labels(self.event_labels, self.event_weights)
        if isinstance(self.user_attributes, list):  # From YAML.
            object.__setattr__(self, "user_attributes", tuple(self.user_attributes))
        attributes = self.user_attributes
        if (
            not isinstance(attributes, tuple)
            or not all(isinstance(a, str) and a.strip() == a and a for a in attributes)
            or len(set(attributes)) != len(attributes)
            or "user_id" in attributes
        ):
            raise ValueError(
                f"ingest.user_attributes={attributes!r} must be a list of distinct, non-empty "
                "column names other than user_id, e.g. [country, age_band]"
            )
        if (
            isinstance(self.history_length, bool)
            or not isinstance(self.history_length, int)
            or (self.history_length < 0)
        ):
            raise ValueError(
                f"ingest.history_length={self.history_length!r} must be an integer >= 0"
            )
        if isinstance(self.eval_days, bool) or not isinstance(self.eval_days, int | float):
            raise ValueError(
                f"ingest.eval_days={self.eval_days!r} is not a number; set it to the length of "
                "the eval window in days, e.g. 7"
            )
        if not math.isfinite(self.eval_days) or self.eval_days <= 0:
            raise ValueError(
                f"ingest.eval_days={self.eval_days!r} must be a positive number of days; set it "
                "to e.g. 7, or set ingest.split_timestamp for an absolute cutoff"
            )
        if self.split_method not in (SPLIT_TIME, SPLIT_LEAVE_LAST_OUT):
            raise ValueError(
                f"ingest.split_method={self.split_method!r} must be {SPLIT_TIME!r} or "
                f"{SPLIT_LEAVE_LAST_OUT!r}"
            )
        if (
            isinstance(self.test_days, bool)
            or not isinstance(self.test_days, int | float)
            or not math.isfinite(self.test_days)
            or self.test_days < 0
        ):
            raise ValueError(
                f"ingest.test_days={self.test_days!r} must be a number of days >= 0 (0: no "
                "test split)"
            )
        for name, days in (("split_timestamp", "eval_days"), ("test_timestamp", "test_days")):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(
                    f"ingest.{name}={value!r} must be a non-negative integer of epoch seconds "
                    f"(e.g. 1700000000), or null to split by {days}"
                )
        if (
            self.split_timestamp is not None
            and self.test_timestamp is not None
            and self.split_timestamp > self.test_timestamp
        ):
            raise ValueError(
                f"ingest.split_timestamp={self.split_timestamp} is after "
                f"ingest.test_timestamp={self.test_timestamp}; the eval split must come first"
            )
        if not isinstance(self.strict_catalog, bool):
            raise ValueError(f"ingest.strict_catalog={self.strict_catalog!r} must be true or false")
        if (
            isinstance(self.direct_num_workers, bool)
            or not isinstance(self.direct_num_workers, int)
            or self.direct_num_workers < 1
        ):
            raise ValueError(
                f"ingest.direct_num_workers={self.direct_num_workers!r} must be an integer >= 1; "
                "set it to the number of local worker processes, e.g. 2"
            )
        if (
            isinstance(self.num_shards, bool)
            or not isinstance(self.num_shards, int)
            or self.num_shards < 0
        ):
            raise ValueError(
                f"ingest.num_shards={self.num_shards!r} must be an integer >= 0; use 0 to let "
                "the runner choose"
            )
