"""Configuration of the text-embedding job (section `embed` of the YAML files in `tfx_config/`).

Every field has a default, so a config file without an `embed` section runs the job as is.
"""

from __future__ import annotations

import dataclasses


def _check_int(name: str, value: object, minimum: int, hint: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"embed.{name}={value!r} must be an integer >= {minimum}; {hint}")


@dataclasses.dataclass(frozen=True)
class EmbedConfig:
    """How catalog text becomes frozen item vectors.

    Attributes:
      min_batch_size: Fewest texts per encoder call (Beam's `BatchElements` grows batches from
        here; the last batch of a bundle may be smaller).
      max_batch_size: Most texts per encoder call; bounds the encoder's memory (a BERT batch
        holds `max_batch_size x sequence_length` activations per layer).
      output_key: Output of the SavedModel's `serving_default` signature that holds the
        vectors; empty means the signature's only output.
      direct_num_workers: Worker processes of the local DirectRunner (ignored by other
        runners). Each process loads its own copy of the encoder.
      num_shards: Embedding TFRecord shards; 0 chooses from the item count.
    """

    min_batch_size: int = 16
    max_batch_size: int = 128
    output_key: str = ""
    direct_num_workers: int = 2
    num_shards: int = 0

    def __post_init__(self) -> None:
        _check_int("min_batch_size", self.min_batch_size, 1, "e.g. 16")
        _check_int("max_batch_size", self.max_batch_size, 1, "e.g. 128")
        if self.max_batch_size < self.min_batch_size:
            raise ValueError(
                f"embed.max_batch_size={self.max_batch_size} is below "
                f"embed.min_batch_size={self.min_batch_size}; raise max_batch_size or lower "
                "min_batch_size"
            )
        if not isinstance(self.output_key, str):
            raise ValueError(
                f"embed.output_key={self.output_key!r} must be a string (the signature output "
                "holding the vectors), or empty for the only output"
            )
        _check_int("direct_num_workers", self.direct_num_workers, 1, "e.g. 2")
        _check_int("num_shards", self.num_shards, 0, "use 0 to choose from the item count")
