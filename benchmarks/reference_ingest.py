"""A plain single-process Python reference of the ingestion job, for `bench_ingest.py`.

It does what `beam_jobs.ingest.run_ingest` does to local JSON Lines inputs, with ordinary loops,
dicts and sets instead of a pipeline, so the benchmark can say what Beam costs or gains against
the obvious implementation of the same transformation:

1. read the catalog, validate each line with `beam_jobs.parse.parse_item`, keep the first record
   of each item id (by file, line) and dead-letter the other copies;
2. read the interactions, validate each line with `beam_jobs.parse.parse_interaction`, add label
   and weight, dead-letter undecodable lines, contract violations, unlabelled events (when
   `event_labels` is set) and, with `strict_catalog`, items missing from the catalog;
3. drop exact duplicate events (same user, item, timestamp, event and value);
4. attach history and context features per user (`beam_jobs.history.histories`, `add_context`);
5. split by time (cutoff `eval_days` before the latest event, or `split_timestamp`);
6. write train, eval and item-corpus gzip TFRecords of `beam_jobs.examples.serialize_example`,
   the user and item vocabularies of the train split, the dead letters and stats.json.

Validation, history and serialization are the job's own functions, so the outputs hold the same
rows; only the orchestration differs. Each output is one shard (`-00000-of-00001`). Only plain
or gzip JSON Lines on the local filesystem, without column mappings, are supported.

    .venv/bin/python benchmarks/reference_ingest.py --interactions raw/interactions.jsonl \
        --items raw/items.jsonl --output /tmp/reference
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import math
import os
from collections.abc import Iterator
from typing import IO, Any

from beam_jobs import fields
from beam_jobs.config import SECONDS_PER_DAY, IngestConfig
from beam_jobs.examples import serialize_example
from beam_jobs.history import add_context, histories
from beam_jobs.labels import FROM_VALUE
from beam_jobs.parse import parse_interaction, parse_item
from beam_jobs.shards import GZIP_LEVEL
from recstack import features

#: Name of the single shard of each output (`<prefix>-00000-of-00001<suffix>`).
SHARD = "-00000-of-00001"
#: Fields that make two events the same event (as in `beam_jobs.build.BuildShardFn`).
EVENT_KEY = (features.USER_ID, features.ITEM_ID, features.TIMESTAMP, features.EVENT,
             features.VALUE)  # fmt: skip
_BOM = "\ufeff"
_INTERACTIONS = "interactions"
_CATALOG = "catalog"


def dead_letter(source: str, file: str, line: int, raw: str, reason: str) -> dict[str, Any]:
    """Returns the dead letter of one rejected input line (the format of `beam_jobs`)."""
    return {"source": source, "file": file, "line": line, "raw": raw, "reason": reason}


def _files(pattern: str) -> list[str]:
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise OSError(f"No files found matching {pattern!r}; check the path or glob")
    return paths


def _open(path: str) -> IO[bytes]:
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def read_records(pattern: str) -> Iterator[tuple[str, int, str, dict[str, Any] | None, str]]:
    """Yields `(file, line, raw, record, error)` for every non-blank line of the matched files.

    `record` is the decoded JSON object, or None when the line is not UTF-8, not JSON or not an
    object; `error` then says why (a dead-letter reason), else it is "".

    Args:
      pattern: Local path or glob of JSON Lines files (plain or `.gz`).

    Raises:
      OSError: nothing matches `pattern`.
    """
    for path in _files(pattern):
        with _open(path) as stream:
            for number, data in enumerate(stream, start=1):
                data = data.removesuffix(b"\n").removesuffix(b"\r")
                if data.strip():
                    yield path, number, *_decode(data)


def _decode(data: bytes) -> tuple[str, dict[str, Any] | None, str]:
    """Returns `(raw, record, error)` of one line, as `beam_jobs.readers` decodes it."""
    try:
        raw = data.decode("utf-8").removeprefix(_BOM)
    except UnicodeDecodeError as e:
        reason = f"line is not UTF-8 ({e.reason} at byte {e.start})"
        return data.decode("utf-8", errors="replace"), None, reason
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as e:
        return raw, None, f"invalid JSON: {e}"
    if not isinstance(record, dict):
        return raw, None, f"expected a JSON object, got {fields.json_type_name(record)}"
    return raw, record, ""


def read_catalog(pattern: str, letters: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Returns the valid catalog rows by item id, one per id; rejects go to `letters`.

    Of several records with the same id, the first by `(file, line)` is kept (the rule of
    `beam_jobs.dedupe.KeepFirstItemFn`).
    """
    by_id: dict[str, list[tuple[str, int, str, dict[str, Any]]]] = collections.defaultdict(list)
    for path, number, raw, record, error in read_records(pattern):
        if record is None:
            letters.append(dead_letter(_CATALOG, path, number, raw, error))
            continue
        try:
            row = parse_item(record)
        except fields.FieldError as e:
            letters.append(dead_letter(_CATALOG, path, number, raw, str(e)))
            continue
        by_id[row[features.ITEM_ID]].append((path, number, raw, row))
    items = {}
    for item_id, records in by_id.items():
        (kept_file, _, kept_raw, kept_row), *others = sorted(records, key=lambda r: r[:3])
        items[item_id] = kept_row
        for path, number, raw, _ in others:
            reason = (
                f"duplicate {features.ITEM_ID} {item_id!r}: the catalog holds it more than once "
                f"and the record {kept_raw!r} from {kept_file} was kept; keep one line per item"
            )
            letters.append(dead_letter(_CATALOG, path, number, raw, reason))
    return items


def read_interactions(
    config: IngestConfig,
    pattern: str,
    catalog: dict[str, dict[str, Any]],
    letters: list[dict[str, Any]],
    counts: collections.Counter,
) -> dict[str, list[dict[str, Any]]]:
    """Returns the valid, labelled, distinct interactions grouped by user id.

    Rejected lines go to `letters`; `counts` receives `features.STAT_ROWS_IN` (records read)
    and `features.STAT_DUPLICATES_DROPPED`.
    """
    labels, weights = config.event_labels, config.event_weights
    seen: set[tuple] = set()
    by_user: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    read = duplicates = 0
    for path, number, raw, record, error in read_records(pattern):
        read += 1
        if record is None:
            letters.append(dead_letter(_INTERACTIONS, path, number, raw, error))
            continue
        try:
            row = parse_interaction(record)
        except fields.FieldError as e:
            letters.append(dead_letter(_INTERACTIONS, path, number, raw, str(e)))
            continue
        event = row[features.EVENT]
        if labels and event not in labels:
            reason = (
                f"event {event!r} has no label in ingest.event_labels (known: "
                f"{sorted(labels)}); add it to the config or fix the row"
            )
            letters.append(dead_letter(_INTERACTIONS, path, number, raw, reason))
            continue
        label = labels.get(event, 1.0)
        row[features.LABEL] = float(row[features.VALUE] if label == FROM_VALUE else label)
        row[features.WEIGHT] = float(weights.get(event, 1.0))
        item_id = row[features.ITEM_ID]
        if config.strict_catalog and item_id not in catalog:
            reason = (
                f"unknown {features.ITEM_ID} {item_id!r}: not in the item catalog; add the item "
                "to the catalog or set ingest.strict_catalog: false to keep such interactions"
            )
            letters.append(dead_letter(_INTERACTIONS, path, number, raw, reason))
            continue
        key = tuple(row[name] for name in EVENT_KEY)
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        by_user[row[features.USER_ID]].append(row)
    counts[features.STAT_ROWS_IN] = read
    counts[features.STAT_DUPLICATES_DROPPED] = duplicates
    return by_user


def _tfrecord_writer(output_dir: str, prefix: str) -> Any:
    import tensorflow as tf  # Lazy, as in the Beam job: importing this module loads no TF.

    path = os.path.join(output_dir, f"{prefix}{SHARD}{features.TFRECORD_SUFFIX}")
    # The job's gzip level (`beam_jobs.shards.GZIP_LEVEL`), so both compress alike.
    options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=GZIP_LEVEL)
    return tf.io.TFRecordWriter(path, options=options)


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_examples(
    config: IngestConfig,
    by_user: dict[str, list[dict[str, Any]]],
    output_dir: str,
    counts: collections.Counter,
) -> int | None:
    """Writes every user's enriched events to the train or eval TFRecords and the vocabularies.

    Returns:
      The split cutoff in epoch seconds, or None when there are no interactions.
    """
    if config.split_timestamp is not None:
        cutoff = config.split_timestamp
    else:
        latest = max(
            (row[features.TIMESTAMP] for rows in by_user.values() for row in rows), default=None
        )
        cutoff = None if latest is None else math.ceil(latest - config.eval_days * SECONDS_PER_DAY)
    spec = features.INTERACTION_FEATURES
    users: collections.Counter = collections.Counter()
    items: collections.Counter = collections.Counter()
    first_seen: dict[tuple[str, str], int] = {}  # (kind, id) -> first train timestamp
    with (
        _tfrecord_writer(output_dir, features.TRAIN_PREFIX) as train,
        _tfrecord_writer(output_dir, features.EVAL_PREFIX) as evaluation,
    ):
        for user_id in sorted(by_user):
            for row in histories(by_user[user_id], config.history_length):
                row = add_context(row)
                if row[features.TIMESTAMP] >= cutoff:
                    evaluation.write(serialize_example(row, spec))
                    counts[features.STAT_EVAL_ROWS] += 1
                else:
                    train.write(serialize_example(row, spec))
                    counts[features.STAT_TRAIN_ROWS] += 1
                    users[user_id] += 1
                    items[row[features.ITEM_ID]] += 1
                    timestamp = row[features.TIMESTAMP]
                    for key in (("u", user_id), ("i", row[features.ITEM_ID])):
                        first_seen[key] = min(first_seen.get(key, timestamp), timestamp)
    layout = features.DataLayout(output_dir)
    _write_text(layout.user_vocab, _vocabulary_text(users, first_seen, "u"))
    _write_text(layout.item_vocab, _vocabulary_text(items, first_seen, "i"))
    counts[features.STAT_USERS] = len(users)
    counts[features.STAT_ITEMS] = len(items)
    return cutoff


def run_reference(
    config: IngestConfig, interactions: str, items: str, output_dir: str
) -> dict[str, Any]:
    """Runs the whole transformation in this process and returns the stats.json dict.

    Args:
      config: The job's configuration; `direct_num_workers` and `num_shards` are ignored.
      interactions: Local path or glob of the JSON Lines interaction files (plain or `.gz`).
      items: Local path or glob of the JSON Lines catalog files.
      output_dir: Directory for the outputs (created when missing).

    Returns:
      The stats dict, keyed like `beam_jobs.ingest.run_ingest`'s.

    Raises:
      ValueError: `config` asks for another input format or a column mapping.
      OSError: no file matches `interactions` or `items`.
      RuntimeError: the row accounting does not add up (a bug).
    """
    if config.input_format != "jsonl" or config.interaction_columns.columns:
        raise ValueError(
            f"the reference reads JSON Lines with contract column names only, got "
            f"input_format={config.input_format!r} and interaction_columns="
            f"{config.interaction_columns}; use the Beam job for other inputs"
        )
    if config.item_columns.columns:
        raise ValueError(f"the reference has no column mapping, got {config.item_columns}")
    os.makedirs(output_dir, exist_ok=True)
    counts: collections.Counter = collections.Counter()
    catalog_letters: list[dict[str, Any]] = []
    catalog = read_catalog(items, catalog_letters)
    letters: list[dict[str, Any]] = []
    by_user = read_interactions(config, interactions, catalog, letters, counts)
    cutoff = write_examples(config, by_user, output_dir, counts)
    del by_user
    with _tfrecord_writer(output_dir, features.ITEMS_PREFIX) as corpus:
        for row in catalog.values():
            corpus.write(serialize_example(row, features.ITEM_FEATURES))
    path = os.path.join(
        output_dir, f"{features.DEAD_LETTER_PREFIX}{SHARD}{features.DEAD_LETTER_SUFFIX}"
    )
    _write_text(path, "".join(_json_line(letter) for letter in letters + catalog_letters))
    counts[features.STAT_DEAD_LETTERS] = len(letters)
    counts[features.STAT_CATALOG_ITEMS] = len(catalog)
    counts[features.STAT_CATALOG_DEAD_LETTERS] = len(catalog_letters)
    result = _stats(counts, cutoff)
    _write_text(features.DataLayout(output_dir).stats, json.dumps(result, indent=2) + "\n")
    return result


def _json_line(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"


def _vocabulary_text(
    counts: collections.Counter, first_seen: dict[tuple[str, str], int], kind: str
) -> str:
    """`token<TAB>count<TAB>first_seen` lines, count descending then token ascending (the
    format of `beam_jobs.vocab`)."""
    pairs = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
    return "".join(
        features.format_vocabulary_line(token, count, first_seen[kind, token])
        for token, count in pairs
    )


def _stats(counts: collections.Counter, cutoff: int | None) -> dict[str, Any]:
    """The stats.json dict; raises RuntimeError when the row accounting does not add up."""
    written = counts[features.STAT_TRAIN_ROWS] + counts[features.STAT_EVAL_ROWS]
    result = {
        features.STAT_ROWS_IN: counts[features.STAT_ROWS_IN],
        features.STAT_ROWS_WRITTEN: written,
        features.STAT_DEAD_LETTERS: counts[features.STAT_DEAD_LETTERS],
        features.STAT_DUPLICATES_DROPPED: counts[features.STAT_DUPLICATES_DROPPED],
        features.STAT_TRAIN_ROWS: counts[features.STAT_TRAIN_ROWS],
        features.STAT_EVAL_ROWS: counts[features.STAT_EVAL_ROWS],
        features.STAT_USERS: counts[features.STAT_USERS],
        features.STAT_ITEMS: counts[features.STAT_ITEMS],
        features.STAT_CATALOG_ITEMS: counts[features.STAT_CATALOG_ITEMS],
        features.STAT_CATALOG_DEAD_LETTERS: counts[features.STAT_CATALOG_DEAD_LETTERS],
        features.STAT_SPLIT_TIMESTAMP: cutoff,
    }
    accounted = written + result[features.STAT_DEAD_LETTERS]
    accounted += result[features.STAT_DUPLICATES_DROPPED]
    if accounted != result[features.STAT_ROWS_IN]:
        raise RuntimeError(f"the reference lost track of rows: {result}; this is a bug")
    return result


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: runs the reference with the default `IngestConfig` and prints stats."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", required=True, help="Path or glob of JSONL files.")
    parser.add_argument("--items", required=True, help="Path or glob of the JSONL catalog.")
    parser.add_argument("--output", required=True, help="Output directory.")
    args = parser.parse_args(argv)
    result = run_reference(IngestConfig(), args.interactions, args.items, args.output)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
