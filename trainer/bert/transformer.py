"""`BertTransformerLayer`: one post-LayerNorm transformer block of BERT."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras

#: (HuggingFace name inside `encoder.layer.<i>.`, attribute of `BertTransformerLayer`).
DENSE_WEIGHTS = (
    ("attention.self.query", "query"),
    ("attention.self.key", "key"),
    ("attention.self.value", "value"),
    ("attention.output.dense", "attention_output"),
    ("intermediate.dense", "intermediate"),
    ("output.dense", "output_dense"),
)
NORM_WEIGHTS = (
    ("attention.output.LayerNorm", "attention_norm"),
    ("output.LayerNorm", "output_norm"),
)


def build_sublayer(layer: tf_keras.layers.Layer, input_shape) -> None:
    """Builds `layer` under its own name scope, as calling it would: variables are then named
    `<parent>/<layer>/<weight>`, e.g. `encoder/layer_0/query/kernel`."""
    with tf.name_scope(layer.name):
        layer.build(input_shape)


def assign(variable: tf.Variable, value: np.ndarray, name: str, transpose: bool = False) -> None:
    """Assigns a checkpoint array to a variable, checking the shape.

    Args:
      variable: The Keras variable.
      value: The checkpoint's array.
      name: The checkpoint's name of the array, for errors.
      transpose: Assign `value.T` (torch Linear weights are `[out, in]`, Keras kernels
        `[in, out]`).

    Raises:
      ValueError: the shapes differ; the message names the checkpoint weight.
    """
    value = np.asarray(value)
    expected = tuple(variable.shape)[::-1] if transpose else tuple(variable.shape)
    if value.shape != expected:
        raise ValueError(
            f"checkpoint weight {name!r} has shape {value.shape}, the model expects "
            f"{expected}; does config.json match model.safetensors?"
        )
    value = np.transpose(value) if transpose else value
    variable.assign(value.astype(variable.dtype.as_numpy_dtype))


@tf_keras.saving.register_keras_serializable(package="recstack")
class BertTransformerLayer(tf_keras.layers.Layer):
    """Self-attention and feed-forward, each followed by a residual sum and LayerNorm.

    Exactly BERT's block: `h = LN(x + Dense(MultiHeadAttention(x, mask)))`, then
    `LN(h + Dense(gelu(Dense(h))))` with the exact (erf) GELU.

    Args:
      hidden_size: Width of the token vectors.
      num_heads: Attention heads; must divide `hidden_size`.
      intermediate_size: Width of the feed-forward layer.
      layer_norm_eps: LayerNorm epsilon.
      dropout_rate: Dropout on the attention probabilities and on both sublayer outputs,
        applied only when called with `training=True` (BERT's fine-tuning regime).

    Call:
      hidden: float tensor `[batch, seq, hidden_size]`.
      attention_mask: int or bool tensor `[batch, seq]`, 1 on tokens to attend to.
      Returns: float tensor `[batch, seq, hidden_size]`.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        layer_norm_eps: float = 1e-12,
        dropout_rate: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size={hidden_size} is not divisible by num_heads={num_heads}")
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.intermediate_size = intermediate_size
        self.layer_norm_eps = layer_norm_eps
        self.dropout_rate = dropout_rate
        self.head_size = hidden_size // num_heads

        def dense(units: int, name: str, activation: str | None = None) -> tf_keras.layers.Dense:
            return tf_keras.layers.Dense(units, activation=activation, name=name)

        self.query = dense(hidden_size, "query")
        self.key = dense(hidden_size, "key")
        self.value = dense(hidden_size, "value")
        self.attention_output = dense(hidden_size, "attention_output")
        self.intermediate = dense(intermediate_size, "intermediate")
        self.output_dense = dense(hidden_size, "output")
        self.attention_norm = tf_keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, name="attention_norm"
        )
        self.output_norm = tf_keras.layers.LayerNormalization(
            epsilon=layer_norm_eps, name="output_norm"
        )
        self.softmax = tf_keras.layers.Softmax(axis=-1)
        self.dropout = tf_keras.layers.Dropout(dropout_rate)

    def build(self, input_shape) -> None:
        hidden = [None, None, self.hidden_size]
        for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
            build_sublayer(layer, hidden)
        build_sublayer(self.output_dense, [None, None, self.intermediate_size])
        build_sublayer(self.attention_norm, hidden)
        build_sublayer(self.output_norm, hidden)
        super().build(input_shape)

    def _split_heads(self, x: tf.Tensor) -> tf.Tensor:
        """`[batch, seq, hidden]` -> `[batch, heads, seq, head_size]`."""
        shape = tf.shape(x)
        x = tf.reshape(x, [shape[0], shape[1], self.num_heads, self.head_size])
        return tf.transpose(x, [0, 2, 1, 3])

    def call(
        self, hidden: tf.Tensor, attention_mask: tf.Tensor, training: bool | None = None
    ) -> tf.Tensor:
        query = self._split_heads(self.query(hidden))
        key = self._split_heads(self.key(hidden))
        value = self._split_heads(self.value(hidden))
        scores = tf.matmul(query, key, transpose_b=True) / math.sqrt(self.head_size)
        # [batch, 1, 1, seq]: every query of every head sees the same keys.
        key_mask = tf.cast(attention_mask, tf.bool)[:, tf.newaxis, tf.newaxis, :]
        probs = self.dropout(self.softmax(scores, mask=key_mask), training=training)
        context = tf.transpose(tf.matmul(probs, value), [0, 2, 1, 3])
        shape = tf.shape(hidden)
        context = tf.reshape(context, [shape[0], shape[1], self.hidden_size])
        attended = self.dropout(self.attention_output(context), training=training)
        hidden = self.attention_norm(hidden + attended)
        inner = tf.nn.gelu(self.intermediate(hidden), approximate=False)
        output = self.dropout(self.output_dense(inner), training=training)
        return self.output_norm(hidden + output)

    def load_hf_weights(self, weights: dict[str, np.ndarray], prefix: str) -> None:
        """Assigns this block's weights from HuggingFace-named arrays.

        Args:
          weights: Arrays keyed by HuggingFace name (no `bert.` prefix).
          prefix: This block's name prefix, e.g. `encoder.layer.3.`.

        Raises:
          KeyError: a weight is missing. ValueError: a shape does not match.
        """
        if not self.built:
            build_sublayer(self, None)
        for hf_name, attribute in DENSE_WEIGHTS:
            layer = getattr(self, attribute)
            name = f"{prefix}{hf_name}"
            assign(layer.kernel, weights[f"{name}.weight"], f"{name}.weight", transpose=True)
            assign(layer.bias, weights[f"{name}.bias"], f"{name}.bias")
        for hf_name, attribute in NORM_WEIGHTS:
            layer = getattr(self, attribute)
            name = f"{prefix}{hf_name}"
            assign(layer.gamma, weights[f"{name}.weight"], f"{name}.weight")
            assign(layer.beta, weights[f"{name}.bias"], f"{name}.bias")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            hidden_size=self.hidden_size,
            num_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            layer_norm_eps=self.layer_norm_eps,
            dropout_rate=self.dropout_rate,
        )
        return config
