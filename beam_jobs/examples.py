"""Converting rows to `tf.train.Example`s and writing them as gzip TFRecord shards."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_jobs.shards import WriteShards
from recstack import features


def _example_class() -> type:
    """Returns a message class wire-identical to `tf.train.Example`, without TensorFlow.

    The messages of tensorflow/core/example/{feature,example}.proto are declared here in a
    private descriptor pool, so the protobuf runtime (upb, in C) serializes them; Beam workers
    then need not import TensorFlow, which costs seconds and most of a gigabyte per process.
    """
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="recstack/tf_example.proto", package="tensorflow", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str | None]) -> Any:
        msg = proto.message_type.add(name=name)
        for field_name, number, kind, type_name in fields:
            field = msg.field.add(name=field_name, number=number, type=kind,
                                  label=fdp.LABEL_OPTIONAL)  # fmt: skip
            if type_name:
                field.type_name = type_name
        return msg

    for name, kind in (("BytesList", fdp.TYPE_BYTES), ("FloatList", fdp.TYPE_FLOAT),
                       ("Int64List", fdp.TYPE_INT64)):  # fmt: skip
        message(name, ("value", 1, kind, None)).field[0].label = fdp.LABEL_REPEATED
    feature = message(
        "Feature",
        ("bytes_list", 1, fdp.TYPE_MESSAGE, ".tensorflow.BytesList"),
        ("float_list", 2, fdp.TYPE_MESSAGE, ".tensorflow.FloatList"),
        ("int64_list", 3, fdp.TYPE_MESSAGE, ".tensorflow.Int64List"),
    )
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    features_msg = message("Features", ("feature", 1, fdp.TYPE_MESSAGE,
                                        ".tensorflow.Features.FeatureEntry"))  # fmt: skip
    features_msg.field[0].label = fdp.LABEL_REPEATED
    entry = features_msg.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=fdp.TYPE_STRING, label=fdp.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=fdp.TYPE_MESSAGE, label=fdp.LABEL_OPTIONAL,
                    type_name=".tensorflow.Feature")  # fmt: skip
    message("Example", ("features", 1, fdp.TYPE_MESSAGE, ".tensorflow.Features"))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


class ExampleSerializer:
    """Serializes rows to `tf.train.Example` bytes for a fixed feature contract.

    One Example message is built up front with every feature present; each call only
    replaces the values, which keeps the per-row cost to a few microseconds.
    """

    _message_class: type | None = None

    def __init__(self, feature_specs: tuple[features.Feature, ...]) -> None:
        if ExampleSerializer._message_class is None:
            ExampleSerializer._message_class = _example_class()
        self._example = ExampleSerializer._message_class()
        # Per feature: name, default, var_len, is a string, the message's value list.
        self._slots = []
        for spec in feature_specs:
            feature = self._example.features.feature[spec.name]
            kind = {features.DTYPE_STRING: "bytes_list", features.DTYPE_INT64: "int64_list"}
            values = getattr(feature, kind.get(spec.dtype, "float_list"))
            values.SetInParent()
            self._slots.append((spec.name, spec.default, spec.var_len,
                                spec.dtype == features.DTYPE_STRING, values.value))  # fmt: skip

    def __call__(self, row: dict[str, Any]) -> bytes:
        for name, default, var_len, is_string, values in self._slots:
            value = row.get(name, default)
            if value is None:
                raise ValueError(
                    f"row has no {name!r}, a required feature; keys present: {sorted(row)}"
                )
            items = value if var_len else (value,)
            if is_string:
                values[:] = [v.encode("utf-8") for v in items]
            else:
                values[:] = items
        # Map fields serialize in hash order unless asked; sorted keys make the bytes
        # reproducible.
        return self._example.SerializeToString(deterministic=True)


#: id(feature_specs) -> (feature_specs, its serializer). Keyed by identity: hashing a tuple of
#: dataclasses on every row cost as much as the serialization itself.
_SERIALIZERS: dict[int, tuple[tuple[features.Feature, ...], ExampleSerializer]] = {}


def serialize_example(row: dict[str, Any], feature_specs: tuple[features.Feature, ...]) -> bytes:
    """Returns `row` as a serialized `tf.train.Example` holding exactly `feature_specs`.

    Args:
      row: Dict keyed by feature name; var-len features hold lists, others scalars. Keys not in
        `feature_specs` are ignored.
      feature_specs: The contract, e.g. `features.INTERACTION_FEATURES`.

    Returns:
      The serialized Example (features in name order, as protobuf's deterministic
      serialization writes them), parseable with `features.tf_parse_spec(feature_specs)`.

    Raises:
      ValueError: `row` lacks a feature that has no default.
    """
    cached = _SERIALIZERS.get(id(feature_specs))
    if cached is None or cached[0] is not feature_specs:
        cached = _SERIALIZERS[id(feature_specs)] = (feature_specs, ExampleSerializer(feature_specs))
    return cached[1](row)


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
