"""stats.json: the row accounting of one ingestion, computed inside the pipeline.

Every count is the size of a PCollection or a sum of per-shard counts emitted as data (never a
metrics counter, which some runners report approximately), so the accounting
`rows_in == rows_written + dead_letters + duplicates_dropped` is exact and can be checked after
the run by `check_row_accounting`.
"""

from __future__ import annotations

import json
from typing import Any

import apache_beam as beam

from recstack import features

#: Stats an extra must supply (rows read, summed over batches; the split sizes and
#: duplicates, counted while writing).
REQUIRED_EXTRAS = (
    features.STAT_ROWS_IN,
    features.STAT_TRAIN_ROWS,
    features.STAT_EVAL_ROWS,
    features.STAT_TEST_ROWS,
    features.STAT_DUPLICATES_DROPPED,
)
#: Stats that are the element count of one PCollection.
COUNTED_STATS = (
    features.STAT_DEAD_LETTERS,
    features.STAT_USERS,
    features.STAT_ITEMS,
    features.STAT_CATALOG_ITEMS,
    features.STAT_CATALOG_DEAD_LETTERS,
    features.STAT_USER_ROWS,
    features.STAT_USER_DEAD_LETTERS,
)


def _camel(key: str) -> str:
    return "".join(part.title() for part in key.split("_"))


def _keyed(value: Any, key: str) -> tuple[str, Any]:
    return key, value


def finish_stats(counts: dict[str, int], *extras: dict[str, Any]) -> dict[str, Any]:
    """Returns the stats dict: the counted stats, the `extras` dicts in order, and
    `STAT_ROWS_WRITTEN` (train + eval + test rows).

    Raises:
      ValueError: `counts` lacks a key of `COUNTED_STATS`, the extras lack one of
        `REQUIRED_EXTRAS`, or an extra repeats a key.
    """
    missing = [key for key in COUNTED_STATS if key not in counts]
    if missing:
        raise ValueError(f"stats lack the counts {missing}; got {sorted(counts)}")
    stats: dict[str, Any] = {key: counts[key] for key in COUNTED_STATS}
    for extra in extras:
        repeated = sorted(set(extra) & set(stats))
        if repeated:
            raise ValueError(f"stats {repeated} are computed twice")
        stats.update(extra)
    missing = [key for key in REQUIRED_EXTRAS if key not in stats]
    if missing:
        raise ValueError(f"stats lack {missing}; got {sorted(stats)}")
    stats[features.STAT_ROWS_WRITTEN] = sum(
        stats[key]
        for key in (features.STAT_TRAIN_ROWS, features.STAT_EVAL_ROWS, features.STAT_TEST_ROWS)
    )
    return stats


def to_json(stats: dict[str, Any]) -> str:
    """Serializes stats as indented JSON text with sorted keys, ending in a newline."""
    return json.dumps(stats, indent=2, sort_keys=True) + "\n"


def check_row_accounting(stats: dict[str, Any]) -> None:
    """Checks that every interaction line read was written, dead-lettered or a duplicate.

    Raises:
      RuntimeError: `rows_in != rows_written + dead_letters + duplicates_dropped`; the message
        gives the numbers.
    """
    rows_in = stats[features.STAT_ROWS_IN]
    written = stats[features.STAT_ROWS_WRITTEN]
    dead = stats[features.STAT_DEAD_LETTERS]
    duplicates = stats.get(features.STAT_DUPLICATES_DROPPED, 0)
    if rows_in != written + dead + duplicates:
        raise RuntimeError(
            f"ingestion lost track of rows: {features.STAT_ROWS_IN}={rows_in} but "
            f"{features.STAT_ROWS_WRITTEN}={written} + {features.STAT_DEAD_LETTERS}={dead} + "
            f"{features.STAT_DUPLICATES_DROPPED}={duplicates} = {written + dead + duplicates}; "
            "this is a bug in beam_jobs, please report it with the input"
        )


class WriteStats(beam.PTransform):
    """Counts PCollections and writes the stats as one JSON file, `<output_dir>/stats.json`.

    Applied to a dict mapping every key of `COUNTED_STATS` to the PCollection whose size is
    that stat; returns a PCollection of one element, the stats dict.
    """

    def __init__(self, output_dir: str, extras: tuple[beam.PCollection, ...] = ()) -> None:
        """Args:
        output_dir: Data directory (local path or `gs://...`).
        extras: Singleton PCollections of dicts of further stats (e.g. the split cutoffs),
          merged into the stats in order.
        """
        super().__init__()
        self._path = features.DataLayout(output_dir).stats
        self._extras = extras

    def expand(self, counted: dict[str, beam.PCollection]) -> beam.PCollection:
        if set(counted) != set(COUNTED_STATS):
            raise ValueError(
                f"WriteStats needs exactly the PCollections {list(COUNTED_STATS)}; got "
                f"{sorted(counted)}"
            )
        counts = [
            counted[key]
            | f"Count{_camel(key)}" >> beam.combiners.Count.Globally()
            | f"Key{_camel(key)}" >> beam.Map(_keyed, key)
            for key in COUNTED_STATS
        ]
        stats = (
            counts
            | "FlattenCounts" >> beam.Flatten()
            | "CollectCounts" >> beam.combiners.ToDict()
            | "Finish"
            >> beam.Map(finish_stats, *(beam.pvalue.AsSingleton(e) for e in self._extras))
        )
        _ = (
            stats
            | "ToJson" >> beam.Map(to_json)
            | "Write"
            >> beam.io.WriteToText(
                self._path, shard_name_template="", num_shards=1, append_trailing_newlines=False
            )
        )
        return stats
