"""`TextModelHandler`: Beam's TensorFlow handler that registers tensorflow_text's ops first.

A text encoder that tokenizes in its graph (the BERT tower's export) uses ops such as
`FastWordpieceTokenizeWithOffsets` that exist only once `tensorflow_text` is imported; loading
its SavedModel in a fresh worker fails otherwise. Importing this module imports TensorFlow and
tensorflow_hub (through Beam's handler), so `embed_items` imports it lazily.
"""

from __future__ import annotations

from typing import Any

from apache_beam.ml.inference.tensorflow_inference import TFModelHandlerTensor


class TextModelHandler(TFModelHandlerTensor):
    """`TFModelHandlerTensor` whose `load_model` imports `tensorflow_text` before loading."""

    def load_model(self) -> Any:
        import tensorflow_text  # noqa: F401  (registers the text ops before the graph loads)

        return super().load_model()
