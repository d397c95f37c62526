"""The item-embeddings files: `WriteEmbeddings` (Beam) and `read_embeddings` (trainer, index).

An embeddings directory holds `embeddings-SSSSS-of-NNNNN.tfrecord.gz` shards of
`tf.train.Example`s with `features.EMBEDDING_FEATURES` (`item_id` bytes, `embedding` float list
of `dim`), one per item and each item once, plus `embeddings_meta.json`:

    {"count": 1500, "dim": 384, "model": "<encoder SavedModel>", "text_recipe": "..."}
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from beam_jobs.examples import WriteExamples
from recstack import features
from recstack.text import TEXT_RECIPE


def embeddings_pattern(output_dir: str) -> str:
    """Glob of the embedding shards in `output_dir`."""
    return features.DataLayout(output_dir).pattern(features.EMBEDDINGS_PREFIX)


def meta_path(output_dir: str) -> str:
    """Path of `embeddings_meta.json` in `output_dir`."""
    return FileSystems.join(output_dir, features.EMBEDDINGS_META_FILE)


def finish_meta(
    dim_counts: Iterable[tuple[int, int]], model_path: str, text_recipe: str
) -> dict[str, Any]:
    """Returns the embeddings_meta.json dict from `(dim, number of vectors)` pairs.

    Raises:
      ValueError: the vectors have more than one dimension (the encoder's output width varies,
        e.g. it returns per-token outputs padded to each batch's longest text).
    """
    counts = dict(dim_counts)
    if len(counts) > 1:
        raise ValueError(
            f"the encoder {model_path} returned vectors of several dimensions "
            f"{dict(sorted(counts.items()))} (dim: number of items); a text encoder must "
            "return one fixed-size vector per text, e.g. a pooled output"
        )
    return {
        features.META_DIM: next(iter(counts), None),
        features.META_COUNT: sum(counts.values()),
        features.META_MODEL: model_path,
        features.META_TEXT_RECIPE: text_recipe,
    }


def check_unique_id(id_count: tuple[str, int]) -> str:
    """Returns the id of an `(item_id, occurrences)` pair.

    Raises:
      ValueError: the id occurs more than once (the output maps each item to one vector).
    """
    item_id, count = id_count
    if count > 1:
        raise ValueError(
            f"item_id {item_id!r} occurs {count} times in the items; embed a catalog with "
            "unique ids, e.g. the item corpus written by `recstack ingest`"
        )
    return item_id


def _to_row(pair: tuple[str, np.ndarray]) -> dict[str, Any]:
    item_id, vector = pair
    return {features.ITEM_ID: item_id, features.ITEM_EMBEDDING: vector.tolist()}


def _id_one(pair: tuple[str, np.ndarray]) -> tuple[str, int]:
    return pair[0], 1


def _dim_one(pair: tuple[str, np.ndarray]) -> tuple[int, int]:
    return int(pair[1].shape[0]), 1


def _to_json(meta: dict[str, Any]) -> str:
    return json.dumps(meta, indent=2, sort_keys=True) + "\n"


class WriteEmbeddings(beam.PTransform):
    """Writes `(item_id, vector)` pairs as the embedding shards and embeddings_meta.json.

    Applied to a PCollection of `(item_id, np.ndarray [dim])`; returns a PCollection of one
    element, the meta dict. The pipeline fails (ValueError) when an id occurs twice or the
    vectors differ in dimension.
    """

    def __init__(
        self,
        output_dir: str,
        model_path: str,
        text_recipe: str = TEXT_RECIPE,
        num_shards: int = 0,
    ) -> None:
        """Args:
        output_dir: Directory of the outputs (local or `gs://`).
        model_path: The encoder's SavedModel, recorded in the meta file.
        text_recipe: How item texts were built, recorded in the meta file.
        num_shards: Embedding shards; 0 chooses from the item count.
        """
        super().__init__()
        self._output_dir = output_dir
        self._model_path = model_path
        self._text_recipe = text_recipe
        self._num_shards = num_shards

    def expand(self, vectors: beam.PCollection) -> beam.PCollection:
        _ = (
            vectors
            | "ToRows" >> beam.Map(_to_row)
            | "WriteShards"
            >> WriteExamples(
                self._output_dir,
                features.EMBEDDINGS_PREFIX,
                features.EMBEDDING_FEATURES,
                self._num_shards,
            )
        )
        _ = (
            vectors
            | "KeyIds" >> beam.Map(_id_one)
            | "CountPerId" >> beam.CombinePerKey(sum)
            | "CheckUniqueIds" >> beam.Map(check_unique_id)
        )
        meta = (
            vectors
            | "KeyDims" >> beam.Map(_dim_one)
            | "CountPerDim" >> beam.CombinePerKey(sum)
            | "CollectDims" >> beam.combiners.ToList()
            | "FinishMeta" >> beam.Map(finish_meta, self._model_path, self._text_recipe)
        )
        _ = (
            meta
            | "ToJson" >> beam.Map(_to_json)
            | "WriteMeta"
            >> beam.io.WriteToText(
                meta_path(self._output_dir),
                shard_name_template="",
                num_shards=1,
                append_trailing_newlines=False,
            )
        )
        return meta


def read_embeddings_meta(output_dir: str) -> dict[str, Any]:
    """Returns the embeddings_meta.json of `output_dir` (keys `features.META_*`)."""
    with FileSystems.open(meta_path(output_dir)) as f:
        return json.loads(f.read().decode("utf-8"))


def read_embeddings(pattern: str, batch_size: int = 4096) -> tuple[list[str], np.ndarray]:
    """Reads embedding shards into memory.

    Args:
      pattern: Glob of the shards, e.g. `embeddings_pattern(output_dir)` (local or `gs://`).
      batch_size: Records parsed per step.

    Returns:
      `(item_ids, vectors)`: the ids in file order and a float32 array `[len(item_ids), dim]`,
      row `i` belonging to `item_ids[i]`. No records give `([], array of shape [0, 0])`.

    Raises:
      FileNotFoundError: no file matches `pattern`.
      ValueError: an id occurs twice, or the vectors differ in dimension.
    """
    import tensorflow as tf  # Lazy: importing this module must not load TensorFlow.

    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(
            f"no embedding files match {pattern}; run `python -m beam_jobs.embed_text` first"
        )
    spec = features.tf_parse_spec(features.EMBEDDING_FEATURES)
    dataset = (
        tf.data.TFRecordDataset(files, compression_type="GZIP")
        .batch(batch_size)
        .map(lambda records: tf.io.parse_example(records, spec))
    )
    ids: list[str] = []
    blocks: list[np.ndarray] = []
    for parsed in dataset:
        ids.extend(item_id.decode("utf-8") for item_id in parsed[features.ITEM_ID].numpy())
        ragged = parsed[features.ITEM_EMBEDDING]
        dims = set(ragged.row_lengths().numpy().tolist())
        dims |= {blocks[0].shape[1]} if blocks else set()
        if len(dims) > 1:
            raise ValueError(f"{pattern} holds vectors of several dimensions {sorted(dims)}")
        blocks.append(ragged.to_tensor().numpy())
    repeated = sorted(item_id for item_id, n in collections.Counter(ids).items() if n > 1)
    if repeated:
        raise ValueError(f"{pattern} holds several vectors for item_id(s) {repeated[:5]}")
    if not blocks:
        return [], np.zeros((0, 0), np.float32)
    return ids, np.concatenate(blocks).astype(np.float32, copy=False)
