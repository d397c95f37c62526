"""`BuildExamples`: validated events -> train/eval/test example shards in a single shuffle.

Every later step of the ingestion works on one user's events: exact duplicates share a user,
history features look at the user's earlier events, leave-last-out picks the user's last ones.
So the events are grouped once, by *shard* (a stable hash of the user id), and one DoFn call
per shard drops duplicates, attaches history and context, routes each event to its split,
serializes, and writes the shard's three files (`train-`, `eval-`, `test-IIIII-of-NNNNN`),
records sorted, so reruns give byte-identical files. Only compact event tuples cross the
shuffle; histories and serialized examples exist only inside the writing worker.

The same call reports what the vocabularies and statistics need, pre-aggregated per shard:
train vocabulary entries of its users, per-item counts, per-user activity, row counts.
"""

from __future__ import annotations

import collections
import math
import zlib
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.config import SPLIT_LEAVE_LAST_OUT, SPLIT_TIME
from beam_jobs.examples import ExampleSerializer
from beam_jobs.history import add_context, histories
from beam_jobs.shards import shard_path, write_shard
from beam_jobs.split import (
    EVAL_TAG,
    TEST_TAG,
    TRAIN_TAG,
    Cutoffs,
    MaxOrNoneFn,
    split_by_time,
    split_leave_last_out,
    time_cutoffs,
)
from recstack import features

#: Fields of an event tuple, the form in which events cross the shuffle.
EVENT_FIELDS = (
    features.USER_ID,
    features.ITEM_ID,
    features.TIMESTAMP,
    features.EVENT,
    features.VALUE,
    features.LABEL,
    features.WEIGHT,
)
#: Raw input bytes per interaction shard when the shard count is chosen automatically.
INPUT_BYTES_PER_SHARD = 16 * 1024 * 1024
#: Split tag -> file prefix.
SPLIT_PREFIXES = {
    TRAIN_TAG: features.TRAIN_PREFIX,
    EVAL_TAG: features.EVAL_PREFIX,
    TEST_TAG: features.TEST_PREFIX,
}

WRITTEN_TAG = "written"
USER_VOCAB_TAG = "user_vocab"
ITEM_COUNTS_TAG = "item_counts"
ACTIVITY_TAG = "activity"
COUNTS_TAG = "counts"
#: Keys of the per-shard (and merged) counts.
DUPLICATES = "duplicates"
ROWS = "rows"
EVENTS = "events"


def to_event(row: dict[str, Any]) -> tuple:
    """Returns the event tuple (`EVENT_FIELDS`) of an interaction dict; label and weight
    default to 1.0."""
    return (
        row[features.USER_ID],
        row[features.ITEM_ID],
        row[features.TIMESTAMP],
        row[features.EVENT],
        row.get(features.VALUE, 0.0),
        row.get(features.LABEL, 1.0),
        row.get(features.WEIGHT, 1.0),
    )


def shard_of_key(key: str, num_shards: int) -> int:
    """Returns the stable shard of `key`: CRC-32 of its UTF-8 bytes mod `num_shards`. Events
    go to the shard of their user id; per-item counts are summed in the bucket of the item id."""
    return zlib.crc32(key.encode("utf-8")) % num_shards


def choose_num_shards(input_bytes: int, num_shards: int) -> int:
    """Returns `num_shards` when positive, else one shard per `INPUT_BYTES_PER_SHARD` of raw
    input (at least 1). Depends only on the input, so reruns shard identically."""
    if num_shards > 0:
        return num_shards
    return max(1, math.ceil(input_bytes / INPUT_BYTES_PER_SHARD))


def input_bytes(pattern: str) -> int:
    """Returns the total size of the files matching `pattern` (0 when none match)."""
    return sum(m.size_in_bytes for m in FileSystems.match([pattern])[0].metadata_list)


def merge_counts(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sums per-shard counts: `{"duplicates": n, "rows": {split: n}, "events": {split:
    {event: n}}}`; every split is present in the result."""
    duplicates = 0
    rows = {tag: 0 for tag in SPLIT_PREFIXES}
    events: dict[str, collections.Counter] = {tag: collections.Counter() for tag in SPLIT_PREFIXES}
    for part in parts:
        duplicates += part[DUPLICATES]
        for tag in SPLIT_PREFIXES:
            rows[tag] += part[ROWS][tag]
            events[tag].update(part[EVENTS][tag])
    return {
        DUPLICATES: duplicates,
        ROWS: rows,
        EVENTS: {tag: dict(sorted(counter.items())) for tag, counter in events.items()},
    }


def merge_item_counts(parts: Iterable[tuple[int, int, int | None]]) -> tuple[int, int, int | None]:
    """Combines `(events, train events, first train time)` of one item across shards."""
    events = train = 0
    first = None
    for all_events, train_events, train_first in parts:
        events += all_events
        train += train_events
        if train_first is not None and (first is None or train_first < first):
            first = train_first
    return events, train, first


def merge_item_count_maps(
    maps: Iterable[dict[str, tuple[int, int, int | None]]],
) -> dict[str, tuple[int, int, int | None]]:
    """Merges `{item: (events, train events, first train time)}` maps (`merge_item_counts`
    per item shared by several); the inputs are not modified."""
    merged: dict[str, tuple[int, int, int | None]] = {}
    for counts_by_item in maps:
        for item, counts in counts_by_item.items():
            seen = merged.get(item)
            merged[item] = counts if seen is None else merge_item_counts((seen, counts))
    return merged


class BuildShardFn(beam.DoFn):
    """Builds and writes one shard; see the module docstring.

    Input is `(shard index, lists of event tuples)` from a GroupByKey. Main output: nothing;
    tagged outputs: `WRITTEN_TAG` the shard index, `USER_VOCAB_TAG` `(user, train events,
    first train time)`,
    `ITEM_COUNTS_TAG` `(bucket, {item: (events, train events, first train time)})` (the
    shard's items, split into `num_shards` buckets by `shard_of_key`: a few large elements
    instead of one per item and shard), `ACTIVITY_TAG`
    `(events, distinct items)` per user, `COUNTS_TAG` one counts dict (see `merge_counts`).
    """

    def __init__(
        self, output_dir: str, num_shards: int, history_length: int, split_method: str
    ) -> None:
        super().__init__()
        self._output_dir = output_dir
        self._num_shards = num_shards
        self._history_length = history_length
        self._by_time = split_method == SPLIT_TIME
        self._duplicates = beam.metrics.Metrics.counter("interactions", "duplicates_dropped")

    def setup(self) -> None:
        self._serialize = ExampleSerializer(features.INTERACTION_FEATURES)

    def _route(self, row: dict[str, Any], cutoffs: Cutoffs) -> str:
        return split_by_time(row, cutoffs) if self._by_time else split_leave_last_out(row)

    def process(self, element: tuple[int, Iterable[list[tuple]]], cutoffs: Cutoffs) -> Iterator:
        index, values = element
        by_user: dict[str, list[tuple]] = collections.defaultdict(list)
        for events_list in values:
            for event in events_list:
                by_user[event[0]].append(event)
        records: dict[str, list[bytes]] = {tag: [] for tag in SPLIT_PREFIXES}
        events = {tag: collections.Counter() for tag in SPLIT_PREFIXES}
        items: dict[str, list] = {}
        duplicates = 0
        for user in sorted(by_user):
            unique = sorted(set(by_user[user]))
            duplicates += len(by_user[user]) - len(unique)
            rows = histories([dict(zip(EVENT_FIELDS, e, strict=True)) for e in unique],
                             self._history_length)  # fmt: skip
            train_count, train_first, distinct = 0, None, set()
            for row in rows:
                tag = self._route(row, cutoffs)
                records[tag].append(self._serialize(add_context(row)))
                events[tag][row[features.EVENT]] += 1
                item, timestamp = row[features.ITEM_ID], row[features.TIMESTAMP]
                distinct.add(item)
                counts = items.setdefault(item, [0, 0, None])
                counts[0] += 1
                if tag == TRAIN_TAG:
                    train_count += 1
                    train_first = timestamp if train_first is None else min(train_first, timestamp)
                    counts[1] += 1
                    counts[2] = timestamp if counts[2] is None else min(counts[2], timestamp)
            if train_count:
                yield beam.pvalue.TaggedOutput(USER_VOCAB_TAG, (user, train_count, train_first))
            yield beam.pvalue.TaggedOutput(ACTIVITY_TAG, (len(unique), len(distinct)))
        self._duplicates.inc(duplicates)
        write_split_shards(self._output_dir, index, self._num_shards, records)
        yield beam.pvalue.TaggedOutput(WRITTEN_TAG, index)
        buckets: dict[int, dict[str, tuple]] = collections.defaultdict(dict)
        for item, counts in items.items():
            buckets[shard_of_key(item, self._num_shards)][item] = tuple(counts)
        for bucket, counts_by_item in buckets.items():
            yield beam.pvalue.TaggedOutput(ITEM_COUNTS_TAG, (bucket, counts_by_item))
        yield beam.pvalue.TaggedOutput(
            COUNTS_TAG,
            {
                DUPLICATES: duplicates,
                ROWS: {tag: len(records[tag]) for tag in SPLIT_PREFIXES},
                EVENTS: {tag: dict(counter) for tag, counter in events.items()},
            },
        )


class BuildResult(NamedTuple):
    """Outputs of `BuildExamples`.

    Attributes:
      user_vocab: `(user, train events, first train time)` entries.
      item_vocab: `(item, train events, first train time)` entries (items with train events).
      item_counts: `(item, (events, train events, first train time))`, one per item.
      activity: `(events, distinct items)` per user.
      counts: One dict: duplicates dropped, rows and events per split (see `merge_counts`).
      cutoffs: One `split.Cutoffs`.
    """

    user_vocab: beam.PCollection
    item_vocab: beam.PCollection
    item_counts: beam.PCollection
    activity: beam.PCollection
    counts: beam.PCollection
    cutoffs: beam.PCollection


def _latest(batch: list[tuple]) -> int:
    return max(event[2] for event in batch)


def _key_by_shard(batch: list[tuple], num_shards: int) -> Iterator[tuple[int, list[tuple]]]:
    """Splits a batch of events into one list per shard."""
    by_shard: dict[int, list[tuple]] = collections.defaultdict(list)
    for event in batch:
        by_shard[shard_of_key(event[0], num_shards)].append(event)
    yield from by_shard.items()


def write_split_shards(
    output_dir: str, index: int, num_shards: int, records: dict[str, list[bytes]]
) -> None:
    """Writes shard `index` of each split (`SPLIT_PREFIXES`): its records, or none."""
    for tag, prefix in SPLIT_PREFIXES.items():
        path_prefix = FileSystems.join(output_dir, prefix)
        path = shard_path(path_prefix, index, num_shards, features.TFRECORD_SUFFIX)
        write_shard(path, records.get(tag, ()))


def _write_if_missing(index: int, written: list[int], output_dir: str, num_shards: int) -> None:
    """Writes empty shard files for `index` when no user hashed to it, so the file set is
    complete."""
    if index not in written:
        write_split_shards(output_dir, index, num_shards, {})


def _item_entries(
    kv: tuple[int, dict[str, tuple[int, int, int | None]]],
) -> list[tuple[str, tuple[int, int, int | None]]]:
    return sorted(kv[1].items())


def _vocab_entry(kv: tuple[str, tuple[int, int, int | None]]) -> tuple[str, int, int]:
    item, (_, train, first) = kv
    return item, train, first


class BuildExamples(beam.PTransform):
    """Event tuples -> written train/eval/test shards, vocabulary entries and statistics.

    Applied to a PCollection of non-empty lists of event tuples (`to_event`); returns a
    `BuildResult`. Each shard
    of users must fit in one worker's memory (`choose_num_shards` keeps shards near
    `INPUT_BYTES_PER_SHARD` of raw input).
    """

    def __init__(
        self,
        output_dir: str,
        num_shards: int,
        history_length: int = 20,
        split_method: str = SPLIT_TIME,
        eval_days: float = 7.0,
        test_days: float = 0.0,
        split_timestamp: int | None = None,
        test_timestamp: int | None = None,
    ) -> None:
        """Args:
        output_dir: Data directory (local path or `gs://...`).
        num_shards: Shards per split (>= 1).
        history_length: Items in each event's history.
        split_method, eval_days, test_days, split_timestamp, test_timestamp: The split (see
          `beam_jobs.config.IngestConfig`).

        Raises:
          ValueError: `num_shards` < 1 or an unknown `split_method`.
        """
        super().__init__()
        if num_shards < 1:
            raise ValueError(f"num_shards={num_shards} must be >= 1")
        if split_method not in (SPLIT_TIME, SPLIT_LEAVE_LAST_OUT):
            raise ValueError(f"unknown split method {split_method!r}")
        self._output_dir = output_dir
        self._num_shards = num_shards
        self._history_length = history_length
        self._split_method = split_method
        self._split = (eval_days, test_days, split_timestamp, test_timestamp)

    def expand(self, events: beam.PCollection) -> BuildResult:
        if self._split_method == SPLIT_LEAVE_LAST_OUT:
            cutoffs = events.pipeline | "NoCutoffs" >> beam.Create([Cutoffs(None, None)])
        else:
            cutoffs = (
                events
                | "Latest" >> beam.Map(_latest)
                | "MaxTimestamp" >> beam.CombineGlobally(MaxOrNoneFn())
                | "Cutoffs" >> beam.Map(time_cutoffs, *self._split)
            )
        # No Flatten with a shard-index marker here: on the local runner that would copy every
        # event through one more stage. Shards no user hashes to are written afterwards.
        built = (
            events
            | "KeyByShard" >> beam.FlatMap(_key_by_shard, self._num_shards)
            | "GroupByShard" >> beam.GroupByKey()
            | "BuildShard"
            >> beam.ParDo(
                BuildShardFn(
                    self._output_dir, self._num_shards, self._history_length, self._split_method
                ),
                cutoffs=beam.pvalue.AsSingleton(cutoffs),
            ).with_outputs(WRITTEN_TAG, USER_VOCAB_TAG, ITEM_COUNTS_TAG, ACTIVITY_TAG, COUNTS_TAG)
        )
        _ = (
            events.pipeline
            | "ShardIndices" >> beam.Create(list(range(self._num_shards)))
            | "WriteEmptyShards"
            >> beam.Map(
                _write_if_missing,
                beam.pvalue.AsList(built[WRITTEN_TAG]),
                self._output_dir,
                self._num_shards,
            )
        )
        item_counts = (
            built[ITEM_COUNTS_TAG]
            | "SumItemCounts" >> beam.CombinePerKey(merge_item_count_maps)
            | "ItemCounts" >> beam.FlatMap(_item_entries)
        )
        item_vocab = (
            item_counts
            | "TrainItems" >> beam.Filter(lambda kv: kv[1][1] > 0)
            | "ItemVocabEntries" >> beam.Map(_vocab_entry)
        )
        counts = built[COUNTS_TAG] | "MergeCounts" >> beam.CombineGlobally(merge_counts)
        return BuildResult(
            built[USER_VOCAB_TAG], item_vocab, item_counts, built[ACTIVITY_TAG], counts, cutoffs
        )
