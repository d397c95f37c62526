"""`export_text_encoder`: a frozen BERT text encoder as a SavedModel for the embedding job.

The SavedModel honours the encoder contract of `beam_jobs.embed_items` (the same as the
stand-in `beam_jobs.hashing_encoder`):

    signature `serving_default`: {"text": string [batch]} -> {"embedding": float32 [batch, hidden]}

and the loaded object is also callable, `model(text) -> [batch, hidden]`. A vector is the mean
of the text's token vectors (`[CLS]` and `[SEP]` included, padding excluded), L2-normalised by
default: that is all-MiniLM-L6-v2's sentence-transformers pipeline (Transformer, mean
Pooling, Normalize), so with its checkpoint the vectors are its sentence embeddings.

The graph holds `tensorflow_text` ops: a process loading the SavedModel must
`import tensorflow_text` first, or loading fails with "Op type not registered
'FastWordpieceTokenizeWithOffsets'".

Write one with

    python -m trainer.bert.export --output out/text_encoder [--checkpoint DIR] [--max-length 128]
"""

from __future__ import annotations

import argparse
import logging

import tensorflow as tf

from recstack import features
from trainer.bert.text_tower import BertTextTower
from trainer.bert.transformer import build_sublayer

logger = logging.getLogger(__name__)

#: Name of the signature input holding the texts (as in `beam_jobs.hashing_encoder`).
INPUT_TEXT = "text"

_TEXT_SPEC = tf.TensorSpec([None], tf.string, name=INPUT_TEXT)


class TextEncoderModule(tf.Module):
    """The encoder contract's call and signature over a `BertTextTower`, without Keras objects.

    The module tracks the tower's variables but not the tower itself: a SavedModel holding
    Keras layers would need Keras metadata to load with `tf.keras.models.load_model`, which is
    how Beam's `TFModelHandlerTensor` loads it; a plain module loads as a plain SavedModel.

    Args:
      tower: The tower; called in inference mode.
      normalize: L2-normalise each vector.
    """

    def __init__(self, tower: BertTextTower, normalize: bool = True) -> None:
        super().__init__(name="bert_text_encoder")
        if not tower.built:
            build_sublayer(tower, None)  # Creates every variable, to be tracked below.
        self.tower_variables = list(tower.variables)

        def encode(text: tf.Tensor) -> tf.Tensor:
            vectors = tower(text, training=False)
            return tf.math.l2_normalize(vectors, axis=1) if normalize else vectors

        def serve(text: tf.Tensor) -> dict[str, tf.Tensor]:
            return {features.ITEM_EMBEDDING: encode(text)}

        #: `[batch]` strings -> float32 `[batch, dim]` vectors.
        self.__call__ = tf.function(encode, input_signature=[_TEXT_SPEC])
        #: The `serving_default` signature: `{"embedding": [batch, dim]}`.
        self.serve = tf.function(serve, input_signature=[_TEXT_SPEC])


def export_text_encoder(
    checkpoint_dir: str | None,
    export_dir: str,
    max_length: int = 128,
    normalize: bool = True,
    lower_case: bool | None = None,
) -> str:
    """Writes the frozen, mean-pooled BERT encoder of a checkpoint as a SavedModel.

    Texts are padded per batch to their longest (not to `max_length`), which gives the same
    vectors faster on CPU.

    Args:
      checkpoint_dir: HuggingFace-layout BERT checkpoint; None for the installed
        all-MiniLM-L6-v2.
      export_dir: SavedModel directory to write (local or `gs://`).
      max_length: Tokens per text, `[CLS]` and `[SEP]` included; longer texts are truncated.
        128 is what all-MiniLM-L6-v2 was trained with.
      normalize: L2-normalise the vectors (True, as sentence-transformers does for MiniLM);
        False returns the plain mean-pooled vectors.
      lower_case: Uncased vocabulary; None reads it from the checkpoint.

    Returns:
      `export_dir`.

    Raises:
      FileNotFoundError, KeyError, ValueError, ModuleNotFoundError: the checkpoint is missing
        or invalid (see `BertTextTower.from_checkpoint`).
    """
    tower = BertTextTower.from_checkpoint(
        checkpoint_dir,
        lower_case=lower_case,
        max_length=max_length,
        pad_to_max_length=False,
        name="bert_text_tower",
    )
    module = TextEncoderModule(tower, normalize)
    tf.saved_model.save(module, export_dir, signatures={features.SERVING_SIGNATURE: module.serve})
    return export_dir


def run(argv: list[str] | None = None) -> str:
    """Command-line entry: exports a BERT text encoder; returns its path."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="SavedModel directory to write.")
    parser.add_argument(
        "--checkpoint", default=None, help="BERT checkpoint directory (default: all-MiniLM-L6-v2)."
    )
    parser.add_argument("--max-length", type=int, default=128, help="Tokens per text.")
    parser.add_argument(
        "--no-normalize", action="store_true", help="Do not L2-normalise the vectors."
    )
    args = parser.parse_args(argv)
    path = export_text_encoder(
        args.checkpoint, args.output, args.max_length, normalize=not args.no_normalize
    )
    logger.info("Saved the BERT text encoder of %s to %s", args.checkpoint or "MiniLM", path)
    return path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run()
