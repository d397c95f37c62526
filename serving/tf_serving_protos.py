"""TensorFlow Serving config messages that the `tensorflow-serving-api` wheel does not ship.

`tensorflow_model_server --batching_parameters_file` reads a text `BatchingParameters`
(`tensorflow_serving/servables/tensorflow/session_bundle_config.proto`) and
`--monitoring_config_file` a text `MonitoringConfig` (`tensorflow_serving/config/
monitoring_config.proto`). The pip package carries neither, so this module declares both with
TF Serving's package, message names, field names and numbers (as of TF Serving r2.20), built
in memory from `descriptor_pb2` (no protoc step). Text files written for the real server parse
here unchanged, and a file these classes reject would be rejected by TF Serving too.

The descriptors live in a private `DescriptorPool`, so a later `tensorflow-serving-api` that
ships the real `*_pb2` modules cannot clash with them in the default pool.

    from google.protobuf import text_format
    from serving.tf_serving_protos import BatchingParameters
    params = text_format.Parse("max_batch_size { value: 64 }", BatchingParameters())
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

_FieldProto = descriptor_pb2.FieldDescriptorProto

#: TF Serving's proto package; the full names below are `tensorflow.serving.<Message>`.
PACKAGE = "tensorflow.serving"
_WRAPPERS_FILE = "google/protobuf/wrappers.proto"

#: (name, number, type, message type or None) of `BatchingParameters`' fields, in number order
#: except 6 and 7, which TF Serving declares after 9.
_BATCHING_FIELDS = (
    ("max_batch_size", 1, _FieldProto.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("batch_timeout_micros", 2, _FieldProto.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("max_enqueued_batches", 3, _FieldProto.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("num_batch_threads", 4, _FieldProto.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
    ("thread_pool_name", 5, _FieldProto.TYPE_MESSAGE, ".google.protobuf.StringValue"),
    ("allowed_batch_sizes", 6, _FieldProto.TYPE_INT64, None),
    ("pad_variable_length_inputs", 7, _FieldProto.TYPE_BOOL, None),
    ("enable_large_batch_splitting", 8, _FieldProto.TYPE_MESSAGE, ".google.protobuf.BoolValue"),
    ("max_execution_batch_size", 9, _FieldProto.TYPE_MESSAGE, ".google.protobuf.Int64Value"),
)
_REPEATED_FIELDS = frozenset({"allowed_batch_sizes"})


def _add_field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    field_type: int,
    type_name: str | None,
) -> None:
    field = message.field.add(name=name, number=number, type=field_type)
    repeated = name in _REPEATED_FIELDS
    field.label = _FieldProto.LABEL_REPEATED if repeated else _FieldProto.LABEL_OPTIONAL
    if type_name is not None:
        field.type_name = type_name


def _session_bundle_config_file() -> descriptor_pb2.FileDescriptorProto:
    # Only BatchingParameters: SessionBundleConfig would drag in tensorflow/core's ConfigProto.
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=[_WRAPPERS_FILE],
    )
    message = file.message_type.add(name="BatchingParameters")
    for name, number, field_type, type_name in _BATCHING_FIELDS:
        _add_field(message, name, number, field_type, type_name)
    return file


def _monitoring_config_file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/config/monitoring_config.proto",
        package=PACKAGE,
        syntax="proto3",
    )
    prometheus = file.message_type.add(name="PrometheusConfig")
    _add_field(prometheus, "enable", 1, _FieldProto.TYPE_BOOL, None)
    _add_field(prometheus, "path", 2, _FieldProto.TYPE_STRING, None)
    monitoring = file.message_type.add(name="MonitoringConfig")
    _add_field(
        monitoring, "prometheus_config", 1, _FieldProto.TYPE_MESSAGE, f".{PACKAGE}.PrometheusConfig"
    )
    return file


def _build_pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(_session_bundle_config_file())
    pool.Add(_monitoring_config_file())
    return pool


_POOL = _build_pool()

#: `tensorflow.serving.BatchingParameters`: the `--batching_parameters_file` message.
BatchingParameters = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(f"{PACKAGE}.BatchingParameters")
)
#: `tensorflow.serving.PrometheusConfig`: `enable` (bool, 1) and `path` (string, 2).
PrometheusConfig = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(f"{PACKAGE}.PrometheusConfig")
)
#: `tensorflow.serving.MonitoringConfig`: the `--monitoring_config_file` message.
MonitoringConfig = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName(f"{PACKAGE}.MonitoringConfig")
)
