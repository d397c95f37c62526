"""Dead letters: input rows that violate the data contract, kept with the reason.

Every step that rejects a row emits one dead letter, so that for each input
`rows read = rows written + dead letters` holds and a user can find and fix every lost row.
A dead letter is a JSON object:

    {"source": "interactions" | "catalog", "file": <path>, "raw": <original line>,
     "reason": <what is wrong, naming the field and the value>}
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from recstack import features

#: Values of a dead letter's "source": the input the rejected line came from.
SOURCE_INTERACTIONS = "interactions"
SOURCE_CATALOG = "catalog"
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


def dead_letter(source: str, file: str, raw: str, reason: str) -> dict[str, str]:
    """Returns the dead-letter record of one rejected input line.

    Args:
      source: `SOURCE_INTERACTIONS` or `SOURCE_CATALOG`.
      file: Path of the file the line was read from.
      raw: The line as read (without its line break).
      reason: Readable reason naming the offending field and value.
    """
    return {"source": source, "file": file, "raw": raw, "reason": reason}


def to_json_line(record: dict[str, Any]) -> str:
    """Serializes one dead letter as a JSON line with sorted keys (stable, diffable files)."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


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
            | "ToJson" >> beam.Map(to_json_line)
            | "Write"
            >> beam.io.WriteToText(
                FileSystems.join(self._output_dir, features.DEAD_LETTER_PREFIX),
                file_name_suffix=features.DEAD_LETTER_SUFFIX,
            )
        )
