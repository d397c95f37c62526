"""What the text tower adds to the candidate tower, by `TextConfig.mode`."""

from __future__ import annotations

import logging

import numpy as np
import tf_keras

from trainer.catalog import Catalog
from trainer.config import TEXT_FINETUNE, TEXT_FROZEN, TEXT_NONE, TextConfig

log = logging.getLogger(__name__)

#: Texts encoded per step when frozen vectors are computed at the start of training.
ENCODE_BATCH = 256


def build(
    text: TextConfig, dim: int, catalog: Catalog, restoring: bool = False
) -> tuple[np.ndarray | None, tf_keras.layers.Layer | None]:
    """Returns `(text_vectors, text_encoder)` for the candidate tower.

    - `none`: `(None, None)`.
    - `frozen`: `([len(catalog), hidden] vectors, None)`: read from `text.embeddings` (the
      `recstack embed` output), or computed once here with the BERT checkpoint. With
      `restoring`, zeros of that shape: the model's checkpoint holds the vectors.
    - `finetune_top_layers` / `full`: `(None, a BERT text tower projected to dim)` that trains
      with the model.

    Raises:
      ValueError: precomputed embeddings miss catalog items (rerun `recstack embed`).
    """
    if text.mode == TEXT_NONE:
        return None, None
    if text.mode == TEXT_FROZEN and restoring:
        return np.zeros((len(catalog), _frozen_width(text)), np.float32), None
    if text.mode == TEXT_FROZEN and text.embeddings:
        return _read_vectors(text.embeddings, catalog), None
    from trainer.bert.text_tower import BertTextTower  # Lazy: id-only models need no BERT.

    tower = BertTextTower.from_checkpoint(
        text.checkpoint or None,
        max_length=text.max_length,
        output_dim=None if text.mode == TEXT_FROZEN else dim,
        mode=text.mode,
        finetune_top_layers=text.finetune_top_layers if text.mode == TEXT_FINETUNE else 0,
        name="text_tower",
    )
    if text.mode != TEXT_FROZEN:
        return None, tower
    log.info("encoding %d catalog texts once with the frozen BERT tower", len(catalog))
    texts = catalog.texts.astype(str)
    parts = [tower(texts[i : i + ENCODE_BATCH]).numpy() for i in range(0, len(texts), ENCODE_BATCH)]
    return np.concatenate(parts).astype(np.float32), None


def _frozen_width(text: TextConfig) -> int:
    """Width of the frozen vectors: the embeddings' own, or the checkpoint's hidden size."""
    if text.embeddings:
        from beam_jobs.embeddings import embeddings_pattern, read_embeddings

        return read_embeddings(embeddings_pattern(text.embeddings))[1].shape[1]
    from trainer.bert import checkpoint

    return checkpoint.read_config(
        text.checkpoint or checkpoint.default_checkpoint_dir()
    ).hidden_size


def _read_vectors(directory: str, catalog: Catalog) -> np.ndarray:
    from beam_jobs.embeddings import embeddings_pattern, read_embeddings

    ids, vectors = read_embeddings(embeddings_pattern(directory))
    row = {item: i for i, item in enumerate(ids)}
    missing = [item for item in catalog.ids.tolist() if item not in row]
    if missing:
        raise ValueError(
            f"{len(missing)} catalog items (e.g. {missing[:3]}) have no vector in {directory}; "
            "rerun `recstack embed` on this data directory"
        )
    return vectors[[row[item] for item in catalog.ids.tolist()]]
