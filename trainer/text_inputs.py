"""What the text tower adds to the candidate tower, by `TextConfig.mode`."""

from __future__ import annotations

import numpy as np
import tf_keras

from trainer.catalog import Catalog
from trainer.config import TEXT_NONE, TextConfig


def build(
    text: TextConfig, dim: int, catalog: Catalog
) -> tuple[np.ndarray | None, tf_keras.layers.Layer | None]:
    """Returns `(text_vectors, text_encoder)` for the candidate tower.

    - `none`: `(None, None)`.
    - `frozen`: `([len(catalog), t] vectors, None)`.
    - `finetune_top_layers` / `full`: `(None, a trainable BERT text tower)`.
    """
    if text.mode == TEXT_NONE:
        return None, None
    raise ValueError(f"text.mode={text.mode!r} is not available yet")
