"""`EmbedItems`: catalog items -> `(item_id, vector)` with Beam's `RunInference`.

The encoder is any TensorFlow SavedModel honouring this contract (the BERT text tower's export
does; so does the stand-in `beam_jobs.hashing_encoder`):

- a `serving_default` signature with exactly one input, a string tensor `[batch]` of texts,
  returning a float tensor `[batch, dim]` (the only output, or the one named `output_key`);
- or, when it has no such signature, the loaded object is callable the same way:
  `model(texts) -> [batch, dim]` (or a dict of outputs, chosen as above).

The model is loaded by `TFModelHandlerTensor` (through `tf.keras.models.load_model`, which
returns a plain SavedModel as a callable object with its signatures); the handler's default
inference function would call the object directly, so `encode_batch` is passed as its
documented `inference_fn` hook to honour the signature contract above.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.ml.inference.base import KeyedModelHandler, PredictionResult, RunInference

from recstack import features
from recstack.text import item_text

#: Namespace of the job's Beam metrics, RunInference's included (e.g. the distribution
#: `inference_request_batch_size`, the size of every encoder call).
METRICS_NAMESPACE = "embed_text"

#: Environment of the worker that loads the model. The handler loads with
#: `tf.keras.models.load_model`, which reads SavedModel directories only under Keras 2 (Keras 3
#: rejects them); `tf.keras` picks its version at first use, on a fresh worker inside the load.
_MODEL_ENV = {"TF_USE_LEGACY_KERAS": "1"}


def _pick_output(outputs: Any, output_key: str, model_id: str) -> Any:
    if not isinstance(outputs, dict):
        if output_key:
            raise ValueError(
                f"the encoder {model_id} returns one tensor, not a dict with {output_key!r}; "
                "set embed.output_key to '' (empty)"
            )
        return outputs
    if output_key:
        if output_key not in outputs:
            raise ValueError(
                f"the encoder {model_id} has no output {output_key!r}; its outputs are "
                f"{sorted(outputs)}; set embed.output_key to one of them"
            )
        return outputs[output_key]
    if len(outputs) != 1:
        raise ValueError(
            f"the encoder {model_id} has outputs {sorted(outputs)}; set embed.output_key to the "
            "one holding the text vectors"
        )
    return next(iter(outputs.values()))


def _call_encoder(model: Any, texts: Any, output_key: str, model_id: str) -> Any:
    signatures = getattr(model, "signatures", None) or {}
    if features.SERVING_SIGNATURE in signatures:
        signature = signatures[features.SERVING_SIGNATURE]
        inputs = signature.structured_input_signature[1]
        if len(inputs) != 1:
            raise ValueError(
                f"the {features.SERVING_SIGNATURE} signature of {model_id} takes inputs "
                f"{sorted(inputs)}; a text encoder takes exactly one, a string tensor [batch]"
            )
        ((name, spec),) = inputs.items()
        if spec.dtype.name != "string":
            raise ValueError(
                f"the {features.SERVING_SIGNATURE} input {name!r} of {model_id} is {spec}; a "
                "text encoder takes a string tensor [batch]"
            )
        return _pick_output(signature(**{name: texts}), output_key, model_id)
    if callable(model):
        return _pick_output(model(texts), output_key, model_id)
    raise TypeError(
        f"{model_id} has no {features.SERVING_SIGNATURE} signature and is not callable; export "
        "the encoder with a signature taking a string tensor [batch]"
    )


def encode_batch(
    model: Any,
    batch: Sequence[Any],
    inference_args: dict[str, Any],
    model_id: str | None = None,
    output_key: str = "",
) -> list[PredictionResult]:
    """The `inference_fn` of the encoder's `TFModelHandlerTensor`: one call per batch.

    Args:
      model: The loaded SavedModel (see the module docstring for the contract).
      batch: Scalar string tensors, one text each.
      inference_args: Unused (RunInference passes `{}`); must be empty.
      model_id: The model's path, for error messages.
      output_key: Signature output holding the vectors; "" for the only output.

    Returns:
      One `PredictionResult` per text, its inference a float32 numpy vector `[dim]`.

    Raises:
      ValueError: the model breaks the contract (inputs, outputs, or a result that is not a
        float tensor `[len(batch), dim]`); the message names the model and the fix.
    """
    import tensorflow as tf  # Lazy: importing this module must not load TensorFlow.

    if inference_args:
        raise ValueError(f"the text encoder takes no inference_args, got {sorted(inference_args)}")
    model_id = model_id or "the text encoder"
    vectors = tf.convert_to_tensor(_call_encoder(model, tf.stack(batch), output_key, model_id))
    shape = vectors.shape.as_list()
    if not vectors.dtype.is_floating or len(shape) != 2 or shape[0] != len(batch) or shape[1] < 1:
        raise ValueError(
            f"the encoder {model_id} returned {vectors.dtype.name} {shape} for "
            f"{len(batch)} texts; a text encoder returns float vectors [batch, dim]"
        )
    array = vectors.numpy().astype(np.float32, copy=False)
    pairs = zip(batch, array, strict=True)
    return [PredictionResult(text, vector, model_id) for text, vector in pairs]


def text_encoder_handler(
    model_path: str, min_batch_size: int, max_batch_size: int, output_key: str = ""
) -> KeyedModelHandler:
    """Returns the keyed RunInference handler of the text encoder at `model_path`.

    Args:
      model_path: SavedModel directory (local or `gs://`).
      min_batch_size: Fewest texts per encoder call.
      max_batch_size: Most texts per encoder call.
      output_key: Signature output holding the vectors; "" for the only output.

    Returns:
      A `KeyedModelHandler` over `TFModelHandlerTensor` (which first imports tensorflow_text,
      see `beam_jobs.text_model_handler`), mapping `(key, scalar string tensor)`
      to `(key, PredictionResult)`.

    Raises:
      ImportError: `tensorflow_hub`, which Beam's TensorFlow handler imports, is missing.
    """
    try:  # Lazy: the handler's module imports TensorFlow and tensorflow_hub.
        from beam_jobs.text_model_handler import TextModelHandler
    except ModuleNotFoundError as e:
        raise ImportError(
            f"Beam's TensorFlow model handler needs {e.name!r}, which is not installed; "
            "install it with `pip install tensorflow-hub==0.16.1`"
        ) from e

    return KeyedModelHandler(
        TextModelHandler(
            model_path,
            inference_fn=functools.partial(encode_batch, output_key=output_key),
            min_batch_size=min_batch_size,
            max_batch_size=max_batch_size,
            env_vars=dict(_MODEL_ENV),
        )
    )


def keyed_text(item: dict[str, Any]) -> tuple[str, Any]:
    """Returns `(item_id, item_text(item))`, the text as a scalar string tensor."""
    import tensorflow as tf

    return item[features.ITEM_ID], tf.constant(item_text(item))


def checked_vector(keyed: tuple[str, PredictionResult]) -> tuple[str, np.ndarray]:
    """Returns `(item_id, vector)` from RunInference's keyed result.

    Raises:
      ValueError: the vector holds NaN or infinity. The job then fails rather than writing a
        vector that would poison every score computed from it; the message names the item and
        its text so the encoder can be fixed (a non-finite output is an encoder bug, e.g. a
        division by zero on a text without tokens).
    """
    item_id, result = keyed
    vector = result.inference
    if not np.all(np.isfinite(vector)):
        bad = int(np.sum(~np.isfinite(vector)))
        text = result.example.numpy().decode("utf-8", errors="replace")
        raise ValueError(
            f"the encoder {result.model_id} gave item {item_id!r} a vector with {bad} non-finite "
            f"values of {vector.size} (text {text[:200]!r}); fix the encoder for this input: "
            "no embeddings are written from a run with non-finite vectors"
        )
    beam.metrics.Metrics.counter(METRICS_NAMESPACE, "items_embedded").inc()
    return item_id, vector


class EmbedItems(beam.PTransform):
    """Encodes each item's `recstack.text.item_text` with a frozen text encoder.

    Applied to a PCollection of item dicts (keys of `features.ITEM_FEATURES`; `item_id`
    required); returns a PCollection of `(item_id, vector)`, each vector a finite float32
    `np.ndarray` of shape `[dim]`. Texts reach the encoder in batches of `min_batch_size` to
    `max_batch_size` (RunInference's `BatchElements`); the item id travels beside its text
    (`KeyedModelHandler`). Every item gets a vector, an item with empty text included.
    """

    def __init__(
        self,
        model_path: str,
        min_batch_size: int = 16,
        max_batch_size: int = 128,
        output_key: str = "",
    ) -> None:
        """Args:
        model_path: SavedModel directory of the encoder (local or `gs://`); see the module
          docstring for the contract.
        min_batch_size: Fewest texts per encoder call.
        max_batch_size: Most texts per encoder call.
        output_key: Signature output holding the vectors; "" for the only output.

        Raises:
          FileNotFoundError: `model_path` holds no `saved_model.pb` (checked here, so a wrong
            path fails before the pipeline starts).
          ValueError: the batch sizes are not `1 <= min_batch_size <= max_batch_size`.
        """
        super().__init__()
        check_saved_model(model_path)
        if not 1 <= min_batch_size <= max_batch_size:
            raise ValueError(
                f"min_batch_size={min_batch_size} and max_batch_size={max_batch_size} must "
                "satisfy 1 <= min_batch_size <= max_batch_size"
            )
        self._handler = text_encoder_handler(model_path, min_batch_size, max_batch_size, output_key)

    def expand(self, items: beam.PCollection) -> beam.PCollection:
        return (
            items
            | "KeyTextById" >> beam.Map(keyed_text)
            | "RunEncoder" >> RunInference(self._handler, metrics_namespace=METRICS_NAMESPACE)
            | "CheckVectors" >> beam.Map(checked_vector)
        )


def check_saved_model(model_path: str) -> None:
    """Checks that `model_path` is a SavedModel directory.

    Raises:
      FileNotFoundError: no `saved_model.pb` in `model_path`; the message says what to pass.
    """
    if not model_path or not FileSystems.exists(FileSystems.join(model_path, "saved_model.pb")):
        raise FileNotFoundError(
            f"no SavedModel at {model_path!r} (no saved_model.pb there); pass --model the "
            "directory of an exported text encoder, e.g. one written by "
            "`python -m beam_jobs.hashing_encoder --output DIR`"
        )
