"""Dead letters: input rows that violate the data contract, kept with the reason.

Every step that rejects a row emits one dead letter, so that for each input
`rows read = rows written + dead letters` holds and a user can find and fix every lost row.
A dead letter is a JSON object:

    {"source": "interactions" | "catalog" | "users", "file": <path>, "line": <1-based line number>,
     "raw": <original line>, "reason": <what is wrong, naming the field and the value>}
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.shards import FORMAT_LINES, WriteShards
from recstack import features

#: Values of a dead letter's "source": the input the rejected line came from.
SOURCE_INTERACTIONS = "interactions"
SOURCE_CATALOG = "catalog"
SOURCE_USERS = "users"
#: Key of a dead letter's 1-based line number (Parquet: row number) in its file.
LINE_KEY = "line"
#: Tag of the dead-letter output of the DoFns that emit them.
DEAD_LETTER_TAG = "dead_letters"


class CheckResult(NamedTuple):
    """Outputs of a step that keeps the rows passing a check and rejects the others.

    Attributes:
      rows: PCollection of the kept rows (dicts keyed by feature name).
      dead_letters: PCollection of dead-letter dicts, one per rejected row.
    """

    rows: beam.PCollection
    dead_letters: beam.PCollection


def dead_letter(source: str, file: str, line: int | None, raw: str, reason: str) -> dict[str, Any]:
    """Returns the dead-letter record of one rejected input line.

    Args:
      source: `SOURCE_INTERACTIONS`, `SOURCE_CATALOG` or `SOURCE_USERS`.
      file: Path of the file the line was read from.
      line: 1-based line number of `raw` in `file` (Parquet: row number); None when unknown.
      raw: The line as read (without its line break).
      reason: Readable reason naming the offending field and value.
    """
    return {"source": source, "file": file, LINE_KEY: line, "raw": raw, "reason": reason}


def rejected(source: str, sourced: Any, reason: str) -> dict[str, Any]:
    """Returns the dead letter of a validated row rejected by a later check.

    Args:
      source: `SOURCE_INTERACTIONS`, `SOURCE_CATALOG` or `SOURCE_USERS`.
      sourced: A `beam_jobs.parse.SourcedRow` (anything with `file`, `line`, `raw`).
      reason: Readable reason naming the offending field and value.
    """
    return dead_letter(source, sourced.file, sourced.line, sourced.raw, reason)


def to_json_line(record: dict[str, Any]) -> str:
    """Serializes one dead letter as a JSON line with sorted keys (stable, diffable files)."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def to_json_bytes(record: dict[str, Any]) -> bytes:
    """`to_json_line` encoded as UTF-8."""
    return to_json_line(record).encode("utf-8")


class WriteDeadLetters(beam.PTransform):
    """Writes dead letters from several steps as JSON Lines shards.

    Applied to a tuple of PCollections of dead-letter dicts; writes
    `<output_dir>/dead_letters-SSSSS-of-NNNNN.jsonl` (`features.DataLayout.dead_letter_pattern`
    globs them). An empty input still writes one empty shard, so readers find the files.
    """

    def __init__(self, output_dir: str) -> None:
        """Args: output_dir: Data directory (local path or `gs://...`)."""
        super().__init__()
        self._output_dir = output_dir

    def expand(self, dead_letters: tuple[beam.PCollection, ...]) -> beam.PCollection:
        return (
            dead_letters
            | "Flatten" >> beam.Flatten()
            | "ToJson" >> beam.Map(to_json_bytes)
            | "Write"
            >> WriteShards(
                FileSystems.join(self._output_dir, features.DEAD_LETTER_PREFIX),
                features.DEAD_LETTER_SUFFIX,
                file_format=FORMAT_LINES,
                compress=False,
            )
        )
