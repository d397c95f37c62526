"""Training configuration (section `train` of the YAML files in `tfx_config/`)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of the two-tower retrieval model and its training loop.

    Attributes:
      embedding_dim: Width of the user and item embeddings (the shared retrieval space).
      num_oov_buckets: Hash buckets for ids missing from the vocabulary.
      batch_size: Examples per step; also the number of in-batch negatives.
      epochs: Passes over the training split.
      learning_rate: Adam learning rate.
      temperature: Softmax temperature of the retrieval loss (logits / temperature).
      logq_correction: Subtract log(sampling probability) of each in-batch candidate, estimated
        from the item vocabulary counts, so popular items are not over-penalised as negatives.
      remove_accidental_hits: Do not treat a candidate with the positive's item id as a negative.
      eval_ks: Cut-offs of the full-corpus recall computed on the eval split.
      shuffle_buffer: Size of the example shuffle buffer.
      seed: Seed for weights initialisation and shuffling.
    """

    embedding_dim: int = 32
    num_oov_buckets: int = 1
    batch_size: int = 512
    epochs: int = 6
    learning_rate: float = 0.001
    temperature: float = 0.2
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    eval_ks: tuple[int, ...] = (10, 50)
    shuffle_buffer: int = 100_000
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("embedding_dim", "num_oov_buckets", "batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise ValueError(
                f"learning_rate={self.learning_rate} and temperature={self.temperature} must be "
                "positive"
            )
        if not self.eval_ks or min(self.eval_ks) < 1:
            raise ValueError(f"eval_ks={self.eval_ks} must be a non-empty list of positive ints")

    def to_dict(self) -> dict:
        """JSON-ready form (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}
