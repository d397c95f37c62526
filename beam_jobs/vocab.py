"""Vocabularies with counts and first-seen times: the ids the trainer embeds, most frequent
first.

A vocabulary file is UTF-8 text with one `token<TAB>count<TAB>first_seen` line per distinct
token (`features.format_vocabulary_line`), sorted by count descending, then token ascending
(so ties are deterministic). `first_seen` is the epoch second of the token's first train
event: the trainer can correct sampling bias by item age and warm-start new ids. It is
computed from the train split only, so no eval id leaks into the model's vocabulary.
"""

from __future__ import annotations

from collections.abc import Iterable

import apache_beam as beam

from recstack import features

#: A vocabulary entry: token, count, first-seen epoch second.
Entry = tuple[str, int, int]


def sort_vocabulary(entries: Iterable[Entry]) -> list[Entry]:
    """Returns the entries sorted by count descending, then token ascending."""
    return sorted(entries, key=lambda entry: (-entry[1], entry[0]))


def format_vocabulary(entries: Iterable[Entry]) -> str:
    """Returns the vocabulary file's text: sorted lines, each ending in "\\n"."""
    return "".join(features.format_vocabulary_line(*entry) for entry in sort_vocabulary(entries))


class WriteVocabulary(beam.PTransform):
    """Writes `(token, count, first_seen)` entries as one sorted vocabulary file at `path`.

    The whole vocabulary is sorted on one worker, which holds for vocabularies of tens of
    millions of ids. An empty input writes an empty file.
    """

    def __init__(self, path: str) -> None:
        """Args: path: Output file, e.g. `features.DataLayout(root).user_vocab`."""
        super().__init__()
        self._path = path

    def expand(self, entries: beam.PCollection) -> beam.PCollection:
        return (
            entries
            | "Collect" >> beam.combiners.ToList()
            | "Format" >> beam.Map(format_vocabulary)
            | "Write"
            >> beam.io.WriteToText(
                self._path, shard_name_template="", num_shards=1, append_trailing_newlines=False
            )
        )
