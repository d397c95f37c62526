"""`BertTextTower`: texts -> one vector each, through BERT and masked mean pooling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras

from trainer.bert import checkpoint
from trainer.bert.checkpoint import BertConfig
from trainer.bert.encoder import MODE_FROZEN, BertEncoder
from trainer.bert.tokenizer import ATTENTION_MASK, BertTokenization
from trainer.bert.transformer import build_sublayer
from trainer.pooling import masked_mean


@tf_keras.saving.register_keras_serializable(package="recstack")
class BertTextTower(tf_keras.layers.Layer):
    """Encodes texts with BERT: tokenize, encode, mean-pool the tokens, optionally project.

    The layer holds everything it needs (vocabulary, architecture, weights), so a SavedModel
    containing it reads no checkpoint file. Build it from a checkpoint directory with
    `from_checkpoint`; the constructor takes the checkpoint's contents, which is what
    `get_config` records (weights excluded: Keras restores them from its own checkpoint).

    Args:
      config: The BERT architecture, a `BertConfig` or its dict.
      vocab: WordPiece tokens in id order (or the path of a vocab.txt).
      lower_case: True for an uncased vocabulary (lowercase and strip accents).
      max_length: Tokens per text, `[CLS]` and `[SEP]` included (default 64); longer texts
        are truncated. At most `config.max_position_embeddings`.
      output_dim: Width of a Dense projection after pooling; 0 or None for none (the output
        is then the encoder's `hidden_size` wide).
      mode: What training may change in the encoder: "frozen" (default), "finetune_top_layers"
        or "full" (see `BertEncoder`). The projection always trains.
      finetune_top_layers: Top layers that train with mode "finetune_top_layers"; else 0.
      weights: Checkpoint arrays (`checkpoint.load_checkpoint`'s second value) to load; None
        leaves the encoder randomly initialised.
      pad_to_max_length: Pad every batch to `max_length` (static shapes, needed on TPU); False
        pads to the longest text of each batch, which is faster and gives the same vectors.
      dropout_rate: BERT dropout while training (see `BertEncoder`); 0 by default.

    Call:
      texts: string tensor `[batch]` (or `[batch, 1]`).
      Returns: float32 tensor `[batch, output_dim or hidden_size]`.
    """

    def __init__(
        self,
        config: BertConfig | Mapping[str, Any],
        vocab: str | Sequence[str],
        lower_case: bool,
        max_length: int = 64,
        output_dim: int | None = None,
        mode: str = MODE_FROZEN,
        finetune_top_layers: int = 0,
        weights: Mapping[str, np.ndarray] | None = None,
        pad_to_max_length: bool = True,
        dropout_rate: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        bert_config = config if isinstance(config, BertConfig) else BertConfig.from_dict(config)
        if max_length > bert_config.max_position_embeddings:
            raise ValueError(
                f"max_length={max_length} exceeds the checkpoint's max_position_embeddings="
                f"{bert_config.max_position_embeddings}; lower max_length"
            )
        if output_dim is not None and output_dim < 0:
            raise ValueError(f"output_dim={output_dim} must be >= 0 (0 or None: no projection)")
        self.output_dim = output_dim or None
        self.tokenizer = BertTokenization(
            vocab, lower_case, max_length, pad_to_max_length, name="tokenization"
        )
        if len(self.tokenizer.vocab) != bert_config.vocab_size:
            raise ValueError(
                f"the vocabulary has {len(self.tokenizer.vocab)} tokens but the config's "
                f"vocab_size is {bert_config.vocab_size}; pass the checkpoint's own vocab.txt"
            )
        self.encoder = BertEncoder(
            bert_config, mode, finetune_top_layers, dropout_rate, name="encoder"
        )
        self.projection = (
            tf_keras.layers.Dense(self.output_dim, name="projection") if self.output_dim else None
        )
        if weights is not None:
            with tf.name_scope(self.name):  # As if built by a call: `<tower>/encoder/...`.
                self.encoder.load_weights_from(weights)

    @classmethod
    def from_checkpoint(
        cls,
        directory: str | None = None,
        lower_case: bool | None = None,
        **kwargs,
    ) -> BertTextTower:
        """Builds a tower with the weights of a checkpoint directory.

        Args:
          directory: HuggingFace-layout checkpoint (`trainer.bert.checkpoint`); None for the
            installed all-MiniLM-L6-v2 (`checkpoint.default_checkpoint_dir()`).
          lower_case: Whether the vocabulary is uncased; None reads `do_lower_case` from the
            checkpoint's tokenizer_config.json.
          **kwargs: The constructor's other arguments (`max_length`, `output_dim`, `mode`, ...).

        Raises:
          FileNotFoundError, KeyError, ValueError, ModuleNotFoundError: see
            `checkpoint.load_checkpoint`, `read_lower_case` and `default_checkpoint_dir`.
        """
        directory = directory or checkpoint.default_checkpoint_dir()
        config, weights = checkpoint.load_checkpoint(directory)
        if lower_case is None:
            lower_case = checkpoint.read_lower_case(directory)
        vocab = checkpoint.read_vocab(directory)
        return cls(config, vocab, lower_case, weights=weights, **kwargs)

    @property
    def hidden_size(self) -> int:
        """Width of the encoder's token vectors (the output width without projection)."""
        return self.encoder.config.hidden_size

    def build(self, input_shape=None) -> None:
        # Every variable exists once built, so that Keras's SavedModel loader, which builds
        # revived layers before restoring, finds them all to restore.
        if not self.encoder.built:
            build_sublayer(self.encoder, None)
        if self.projection is not None and not self.projection.built:
            build_sublayer(self.projection, [None, self.hidden_size])
        super().build(input_shape)

    def call(self, texts: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        tokens = self.tokenizer(texts)
        sequence = self.encoder(tokens, training=training)
        pooled = masked_mean(sequence, tokens[ATTENTION_MASK])
        if self.projection is not None:
            pooled = self.projection(pooled)
        return tf.cast(pooled, tf.float32)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            config=self.encoder.config.to_dict(),
            vocab=list(self.tokenizer.vocab),
            lower_case=self.tokenizer.lower_case,
            max_length=self.tokenizer.max_length,
            output_dim=self.output_dim,
            mode=self.encoder.mode,
            finetune_top_layers=self.encoder.finetune_top_layers,
            pad_to_max_length=self.tokenizer.pad_to_max_length,
            dropout_rate=self.encoder.dropout_rate,
        )
        return config
