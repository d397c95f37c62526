"""Training configuration (section `train` of the YAML files in `tfx_config/`).

`TrainConfig` holds the loop and the retrieval task; nested sections configure the text tower
(`text`), the query tower (`query`), the ranking task (`ranking`), TensorBoard (`tensorboard`)
and the hardware (`hardware`). Every section is a frozen dataclass whose `__post_init__`
rejects impossible values with a message naming the field.
"""

from __future__ import annotations

import dataclasses

#: Text tower modes (`TextConfig.mode`).
TEXT_NONE = "none"
TEXT_FROZEN = "frozen"
TEXT_FINETUNE = "finetune_top_layers"
TEXT_FULL = "full"
TEXT_MODES = (TEXT_NONE, TEXT_FROZEN, TEXT_FINETUNE, TEXT_FULL)
#: Ranking objectives (`RankingConfig.objective`).
RANKING_REGRESSION = "regression"
RANKING_BINARY = "binary"
#: Distribution strategies (`HardwareConfig.strategy`).
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def _positive(config: object, *names: str) -> None:
    for name in names:
        if getattr(config, name) < 1:
            raise ValueError(f"{name}={getattr(config, name)} must be at least 1")


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {list(allowed)}")


@dataclasses.dataclass(frozen=True)
class TextConfig:
    """The BERT text tower over item text (title, description, categories).

    Attributes:
      mode: `none` (no text tower), `frozen` (BERT vectors computed once, or read from the
        ingestion job's embeddings, and projected by a trainable layer), `finetune_top_layers`
        (BERT runs in the training step; its top `finetune_top_layers` layers train) or `full`.
      checkpoint: BERT directory (`config.json`, `model.safetensors`, `vocab.txt`); empty uses
        the installed all-MiniLM-L6-v2 weights.
      max_length: Word pieces per item text, [CLS] and [SEP] included.
      finetune_top_layers: Transformer layers trained in `finetune_top_layers` mode.
      embeddings: Directory of precomputed text vectors (`recstack embed`) for `frozen` mode;
        empty computes them once at the start of training.
    """

    mode: str = TEXT_NONE
    checkpoint: str = ""
    max_length: int = 48
    finetune_top_layers: int = 2
    embeddings: str = ""

    def __post_init__(self) -> None:
        _choice("text.mode", self.mode, TEXT_MODES)
        _positive(self, "max_length", "finetune_top_layers")


@dataclasses.dataclass(frozen=True)
class QueryConfig:
    """The query tower: user id, recent items and context.

    Attributes:
      history_length: Most recent history items used (the examples hold up to the ingest's
        `history_length`); 0 turns history off.
      attention_layers: Self-attention blocks over the history before pooling (0: masked mean
        of the item embeddings only).
      attention_heads: Heads of each self-attention block.
      use_context: Add hour-of-day and weekday embeddings.
    """

    history_length: int = 20
    attention_layers: int = 0
    attention_heads: int = 2
    use_context: bool = True

    def __post_init__(self) -> None:
        if self.history_length < 0 or self.attention_layers < 0:
            raise ValueError(
                f"history_length={self.history_length} and attention_layers="
                f"{self.attention_layers} must be >= 0"
            )
        _positive(self, "attention_heads")


@dataclasses.dataclass(frozen=True)
class RankingConfig:
    """The DCN-v2 ranking task over query and candidate embeddings.

    Attributes:
      weight: Weight of the ranking loss in the multitask loss (0 turns ranking off).
      objective: `regression` (MSE on the label, RMSE reported) or `binary` (cross-entropy
        on the label as a 0/1 click, AUC reported).
      cross_layers: `tfrs.layers.dcn.Cross` layers.
      projection_dim: Low-rank dimension of each cross layer (0: full rank).
      deep_layers: Widths of the ReLU layers after the cross network.
    """

    weight: float = 0.0
    objective: str = RANKING_REGRESSION
    cross_layers: int = 2
    projection_dim: int = 0
    deep_layers: tuple[int, ...] = (64, 32)

    def __post_init__(self) -> None:
        _choice("ranking.objective", self.objective, (RANKING_REGRESSION, RANKING_BINARY))
        if self.weight < 0 or self.cross_layers < 0 or self.projection_dim < 0:
            raise ValueError(
                f"ranking weight={self.weight}, cross_layers={self.cross_layers} and "
                f"projection_dim={self.projection_dim} must be >= 0"
            )


@dataclasses.dataclass(frozen=True)
class TensorBoardConfig:
    """What the run writes for TensorBoard besides the epoch scalars.

    Attributes:
      update_steps: Steps between training scalar summaries.
      histograms: Write embedding histograms every epoch.
      projector_items: Items in the embedding projector (0: no projector).
      profile_steps: `(first, last)` step window to trace with the profiler; empty: none.
    """

    update_steps: int = 50
    histograms: bool = True
    projector_items: int = 2000
    profile_steps: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _positive(self, "update_steps")
        if self.profile_steps and (
            len(self.profile_steps) != 2 or not 0 < self.profile_steps[0] <= self.profile_steps[1]
        ):
            raise ValueError(
                f"profile_steps={list(self.profile_steps)} must be empty or [first, last] with "
                "0 < first <= last"
            )


@dataclasses.dataclass(frozen=True)
class HardwareConfig:
    """Where and how the steps run.

    Attributes:
      strategy: `default` (one device), `mirrored` (all local GPUs), `multi_worker`
        (MultiWorkerMirroredStrategy from TF_CONFIG) or `tpu`.
      tpu: TPU name or address for `tpu` (empty: the one of the environment).
      mixed_precision: Compute in float16 (GPU) or bfloat16 (TPU), keep variables in float32.
      jit_compile: Compile the train step with XLA.
      steps_per_execution: Steps per `tf.function` call (larger amortises host overhead).
    """

    strategy: str = "default"
    tpu: str = ""
    mixed_precision: bool = False
    jit_compile: bool = False
    steps_per_execution: int = 1

    def __post_init__(self) -> None:
        _choice("hardware.strategy", self.strategy, STRATEGIES)
        _positive(self, "steps_per_execution")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of the retrieval + ranking model and its training loop.

    Attributes:
      embedding_dim: Width of the shared retrieval space (query and candidate towers).
      num_oov_buckets: Hash buckets for ids missing from the vocabularies.
      use_categories: Add the item's categories to the candidate tower.
      batch_size: Examples per step (global); also the in-batch negatives per positive.
      epochs: Passes over the training split.
      learning_rate: Adam learning rate.
      retrieval_weight: Weight of the retrieval loss in the multitask loss.
      temperature: Softmax temperature of the retrieval loss (logits / temperature).
      logq_correction: Subtract log(sampling probability) of each in-batch candidate, estimated
        from the item vocabulary counts, so popular items are not over-penalised as negatives.
      remove_accidental_hits: Do not treat a candidate with the positive's item id as a negative.
      hard_negatives: Keep only the this many highest-scoring in-batch negatives per query
        (0: all of them).
      eval_ks: Cut-offs of the full-corpus metrics computed on the eval split.
      shuffle_buffer: Size of the example shuffle buffer.
      checkpoint_steps: Steps between checkpoints of the running fit (so a killed run loses
        at most this many); 0: once per epoch.
      seed: Seed for weights initialisation and shuffling.
    """

    embedding_dim: int = 32
    num_oov_buckets: int = 1
    use_categories: bool = True
    batch_size: int = 512
    epochs: int = 6
    learning_rate: float = 0.001
    retrieval_weight: float = 1.0
    temperature: float = 0.2
    logq_correction: bool = True
    remove_accidental_hits: bool = True
    hard_negatives: int = 0
    eval_ks: tuple[int, ...] = (10, 50)
    shuffle_buffer: int = 100_000
    checkpoint_steps: int = 0
    seed: int = 42
    text: TextConfig = TextConfig()
    query: QueryConfig = QueryConfig()
    ranking: RankingConfig = RankingConfig()
    tensorboard: TensorBoardConfig = TensorBoardConfig()
    hardware: HardwareConfig = HardwareConfig()

    def __post_init__(self) -> None:
        _positive(self, "embedding_dim", "num_oov_buckets", "batch_size", "epochs")
        if self.learning_rate <= 0 or self.temperature <= 0:
            raise ValueError(
                f"learning_rate={self.learning_rate} and temperature={self.temperature} must be "
                "positive"
            )
        if not self.eval_ks or min(self.eval_ks) < 1:
            raise ValueError(f"eval_ks={self.eval_ks} must be a non-empty list of positive ints")
        if self.hard_negatives < 0 or self.checkpoint_steps < 0 or self.retrieval_weight < 0:
            raise ValueError(
                f"hard_negatives={self.hard_negatives}, checkpoint_steps={self.checkpoint_steps} "
                f"and retrieval_weight={self.retrieval_weight} must be >= 0"
            )
        if self.retrieval_weight == 0 and self.ranking.weight == 0:
            raise ValueError("retrieval_weight and ranking.weight are both 0: nothing to train")

    def to_dict(self) -> dict:
        """JSON-ready form (nested sections as dicts, tuples as lists)."""
        from recstack.config import to_dict

        return to_dict(self)
