"""The op types a SavedModel's graph uses (its functions included), for op-allowlist tests."""

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

#: Every op core TensorFlow registers (tensorflow-text's and ScaNN's are not among them).
CORE_OPS = frozenset(dir(tf.raw_ops))


def saved_model_ops(version_dir: str) -> set[str]:
    saved = saved_model_pb2.SavedModel()
    with open(f"{version_dir}/saved_model.pb", "rb") as f:
        saved.ParseFromString(f.read())
    ops = set()
    for meta_graph in saved.meta_graphs:
        ops |= {node.op for node in meta_graph.graph_def.node}
        for function in meta_graph.graph_def.library.function:
            ops |= {node.op for node in function.node_def}
    return ops
