"""Converting rows to `tf.train.Example`s and writing them as gzip TFRecord shards."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.shards import WriteShards
from recstack import features


def serialize_example(row: dict[str, Any], feature_specs: tuple[features.Feature, ...]) -> bytes:
    """Returns `row` as a serialized `tf.train.Example` holding exactly `feature_specs`.

    Args:
      row: Dict keyed by feature name; var-len features hold lists, others scalars. Keys not in
        `feature_specs` are ignored.
      feature_specs: The contract, e.g. `features.INTERACTION_FEATURES`.

    Returns:
      The serialized Example, parseable with `features.tf_parse_spec(feature_specs)`.

    Raises:
      ValueError: `row` lacks a feature that has no default.
    """
    import tensorflow as tf  # Lazy: importing this module must not load TensorFlow.

    example = tf.train.Example()
    for spec in feature_specs:
        if spec.name in row:
            value = row[spec.name]
        elif spec.default is not None:
            value = spec.default
        else:
            raise ValueError(
                f"row has no {spec.name!r}, a required feature; keys present: {sorted(row)}"
            )
        values = list(value) if spec.var_len else [value]
        feature = example.features.feature[spec.name]
        if spec.dtype == features.DTYPE_STRING:
            feature.bytes_list.value.extend(v.encode("utf-8") for v in values)
        elif spec.dtype == features.DTYPE_INT64:
            feature.int64_list.value.extend(values)
        else:
            feature.float_list.value.extend(values)
    # Map fields serialize in hash order unless asked; sorted keys make the bytes reproducible.
    return example.SerializeToString(deterministic=True)


class WriteExamples(beam.PTransform):
    """Writes rows as gzip TFRecords of `tf.train.Example`s, deterministically.

    Files are `<output_dir>/<prefix>-SSSSS-of-NNNNN.tfrecord.gz`, which
    `features.DataLayout(output_dir).pattern(prefix)` globs; the same rows always give
    byte-identical files (see `beam_jobs.shards`). An empty input still writes one empty
    shard. Applied to a PCollection of row dicts; returns the PCollection of paths written.
    """

    def __init__(
        self,
        output_dir: str,
        prefix: str,
        feature_specs: tuple[features.Feature, ...],
        num_shards: int = 0,
    ) -> None:
        """Args:
        output_dir: Data directory (local path or `gs://...`).
        prefix: File name prefix, e.g. `features.TRAIN_PREFIX`.
        feature_specs: Features to write, e.g. `features.INTERACTION_FEATURES`.
        num_shards: Number of shards; 0 chooses one per `shards.DEFAULT_ROWS_PER_SHARD` rows.
        """
        super().__init__()
        self._path_prefix = FileSystems.join(output_dir, prefix)
        self._feature_specs = feature_specs
        self._num_shards = num_shards

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return (
            rows
            | "Serialize" >> beam.Map(serialize_example, self._feature_specs)
            | "Write"
            >> WriteShards(self._path_prefix, features.TFRECORD_SUFFIX, num_shards=self._num_shards)
        )
