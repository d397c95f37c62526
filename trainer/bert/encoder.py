"""`BertEncoder`: BERT's forward pass in tf_keras, loadable from HuggingFace checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from trainer.bert.checkpoint import BertConfig, weight_names
from trainer.bert.embeddings import BertEmbeddings
from trainer.bert.tokenizer import ATTENTION_MASK, INPUT_IDS
from trainer.bert.transformer import BertTransformerLayer, build_sublayer

MODE_FROZEN = "frozen"
MODE_FINETUNE_TOP_LAYERS = "finetune_top_layers"
MODE_FULL = "full"
#: What training may change: nothing; the top `finetune_top_layers` transformer layers (the
#: embeddings and lower layers stay fixed); everything.
MODES = (MODE_FROZEN, MODE_FINETUNE_TOP_LAYERS, MODE_FULL)


def check_mode(mode: str, finetune_top_layers: int, num_layers: int) -> None:
    """Checks a training mode against the encoder's depth.

    Raises:
      ValueError: `mode` is unknown, or `finetune_top_layers` is not in `1..num_layers` with
        mode "finetune_top_layers" (or not 0 with another mode).
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not one of {MODES}")
    if mode == MODE_FINETUNE_TOP_LAYERS:
        if not 1 <= finetune_top_layers <= num_layers:
            raise ValueError(
                f"finetune_top_layers={finetune_top_layers} must be in 1..{num_layers} (the "
                f"encoder's layers) with mode={mode!r}; use mode='frozen' to train none"
            )
    elif finetune_top_layers:
        raise ValueError(
            f"finetune_top_layers={finetune_top_layers} is only used with "
            f"mode={MODE_FINETUNE_TOP_LAYERS!r}, not mode={mode!r}; leave it at 0"
        )


@tf_keras.saving.register_keras_serializable(package="recstack")
class BertEncoder(tf_keras.layers.Layer):
    """A BERT encoder: embeddings, then `num_hidden_layers` post-LayerNorm transformer layers.

    Reproduces HuggingFace's `BertModel` sequence output (`last_hidden_state`) for
    single-segment inputs (token types all 0). Weights start random; `load_weights_from`
    assigns a checkpoint's (see `trainer.bert.checkpoint.load_checkpoint`).

    Args:
      config: The architecture, a `BertConfig` or its dict.
      mode: What training may change, one of `MODES`: "frozen" (nothing), "finetune_top_layers"
        (the top `finetune_top_layers` transformer layers), "full" (everything, the default,
        like any Keras layer).
      finetune_top_layers: With mode "finetune_top_layers", how many top layers train (1 to
        `num_hidden_layers`); 0 otherwise.
      dropout_rate: BERT's dropout (0.1 in pre-training) on embeddings, attention probabilities
        and sublayer outputs, only when called with `training=True`. 0 by default.

    Call:
      inputs: dict with int tensors `[batch, seq]`: `input_ids` and `attention_mask` (1 on
        tokens, 0 on padding), e.g. the output of `BertTokenization`.
      Returns: float tensor `[batch, seq, hidden_size]`, the last layer's token vectors.
    """

    def __init__(
        self,
        config: BertConfig | Mapping[str, Any],
        mode: str = MODE_FULL,
        finetune_top_layers: int = 0,
        dropout_rate: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.config = config if isinstance(config, BertConfig) else BertConfig.from_dict(config)
        self.dropout_rate = dropout_rate
        c = self.config
        self.embeddings = BertEmbeddings(
            c.vocab_size,
            c.hidden_size,
            c.max_position_embeddings,
            c.type_vocab_size,
            c.layer_norm_eps,
            dropout_rate,
            name="embeddings",
        )
        self.transformer_layers = [
            BertTransformerLayer(
                c.hidden_size,
                c.num_attention_heads,
                c.intermediate_size,
                c.layer_norm_eps,
                dropout_rate,
                name=f"layer_{i}",
            )
            for i in range(c.num_hidden_layers)
        ]
        self.set_mode(mode, finetune_top_layers)

    def set_mode(self, mode: str, finetune_top_layers: int = 0) -> None:
        """Sets which weights training may change (see the class docstring).

        Call it before compiling the model that holds the encoder: Keras collects the
        trainable weights at compile time.

        Raises:
          ValueError: see `check_mode`.
        """
        check_mode(mode, finetune_top_layers, self.config.num_hidden_layers)
        self.mode = mode
        self.finetune_top_layers = finetune_top_layers
        # The setter recurses into every sublayer; the top layers are switched back below.
        self.trainable = mode != MODE_FROZEN
        if mode == MODE_FINETUNE_TOP_LAYERS:
            self.embeddings.trainable = False
            first = self.config.num_hidden_layers - finetune_top_layers
            for i, layer in enumerate(self.transformer_layers):
                layer.trainable = i >= first

    def build(self, input_shape=None) -> None:
        build_sublayer(self.embeddings, [None, None])
        for layer in self.transformer_layers:
            build_sublayer(layer, [None, None, self.config.hidden_size])
        super().build(input_shape)

    def call(self, inputs: Mapping[str, tf.Tensor], training: bool | None = None) -> tf.Tensor:
        missing = [k for k in (INPUT_IDS, ATTENTION_MASK) if k not in inputs]
        if missing:
            raise ValueError(
                f"BertEncoder inputs lack {missing}; pass a dict with {INPUT_IDS!r} and "
                f"{ATTENTION_MASK!r} (e.g. BertTokenization's output), got {sorted(inputs)}"
            )
        mask = inputs[ATTENTION_MASK]
        hidden = self.embeddings(inputs[INPUT_IDS], training=training)
        for layer in self.transformer_layers:
            hidden = layer(hidden, mask, training=training)
        return hidden

    def load_weights_from(self, weights: Mapping[str, np.ndarray]) -> None:
        """Assigns checkpoint weights, e.g. those `load_checkpoint` returns.

        Args:
          weights: numpy arrays keyed by HuggingFace `BertModel` name, with or without the
            `bert.` prefix; Linear weights `[out, in]` (transposed here). Extra keys (pooler,
            `position_ids`) are ignored.

        Raises:
          KeyError: weights of this architecture are missing. ValueError: a shape differs.
        """
        weights = {k.removeprefix("bert."): v for k, v in weights.items()}
        missing = [name for name in weight_names(self.config) if name not in weights]
        if missing:
            raise KeyError(
                f"the weights lack {len(missing)} entries of this {self.config.num_hidden_layers}"
                f"-layer BERT, e.g. {missing[:5]}; pass a checkpoint matching its config"
            )
        if not self.built:
            build_sublayer(self, None)
        self.embeddings.load_hf_weights(weights)
        for i, layer in enumerate(self.transformer_layers):
            layer.load_hf_weights(weights, f"encoder.layer.{i}.")

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            config=self.config.to_dict(),
            mode=self.mode,
            finetune_top_layers=self.finetune_top_layers,
            dropout_rate=self.dropout_rate,
        )
        return config
