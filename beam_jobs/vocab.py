"""Vocabularies with counts: the ids the trainer embeds, most frequent first.

A vocabulary file is UTF-8 text with one `token<TAB>count` line per distinct token, sorted by
count descending, then token ascending (so ties are deterministic). It is computed from the
train split only, so no eval id leaks into the model's vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import apache_beam as beam


def _field(row: dict[str, Any], key: str) -> Any:
    return row[key]


def sort_vocabulary(pairs: Iterable[tuple[str, int]]) -> list[tuple[str, int]]:
    """Returns `(token, count)` pairs sorted by count descending, then token ascending."""
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


def format_vocabulary(pairs: Iterable[tuple[str, int]]) -> str:
    """Returns the vocabulary file's text: sorted `token\\tcount` lines, each ending in "\\n"."""
    return "".join(f"{token}\t{count}\n" for token, count in sort_vocabulary(pairs))


class ComputeVocabulary(beam.PTransform):
    """Counts the distinct values of one field.

    Applied to a PCollection of row dicts; returns a PCollection of `(token, count)` pairs, one
    per distinct value of `row[key]` (unordered, like every PCollection; `WriteVocabulary`
    sorts).
    """

    def __init__(self, key: str) -> None:
        """Args: key: Field to count, e.g. `features.USER_ID`."""
        super().__init__()
        self._key = key

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return (
            rows
            | "Extract" >> beam.Map(_field, self._key)
            | "CountPerToken" >> beam.combiners.Count.PerElement()
        )


class WriteVocabulary(beam.PTransform):
    """Writes `(token, count)` pairs as one sorted vocabulary file at `path`.

    The whole vocabulary is sorted on one worker, which holds for vocabularies of tens of
    millions of ids. An empty input writes an empty file.
    """

    def __init__(self, path: str) -> None:
        """Args: path: Output file, e.g. `features.DataLayout(root).user_vocab`."""
        super().__init__()
        self._path = path

    def expand(self, pairs: beam.PCollection) -> beam.PCollection:
        return (
            pairs
            | "Collect" >> beam.combiners.ToList()
            | "Format" >> beam.Map(format_vocabulary)
            | "Write"
            >> beam.io.WriteToText(
                self._path, shard_name_template="", num_shards=1, append_trailing_newlines=False
            )
        )
