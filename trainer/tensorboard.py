"""TensorBoard logging of the training loop: Keras callbacks, hparams, and an event reader.

The callbacks take log directories, callables and arrays rather than our model class, so any
tf_keras model can use them. Suggested layout of a run's `tensorboard/` directory:
  train/      `TrainingScalars` (`learning_rate`, `examples_per_second`, `losses/<key>`, and
              the same under `epoch/`), `EmbeddingHistograms` (`embeddings/<name>`,
              `embedding_norms/<name>`), `ProfilerWindow` (`plugins/profile/<time>/*.xplane.pb`)
  projector/  `EmbeddingProjector` (checkpoint, `metadata.tsv`, `projector_config.pbtxt`)
  .           `write_hparams` (`_hparams_/experiment`, `_hparams_/session_start_info`) and
              `write_final_metrics` (one scalar per metric tag)
`read_tags` and `read_scalars` read any of them back (e.g. in tests).
"""

from trainer.tensorboard_events import iter_summary_values, read_scalars, read_tags
from trainer.tensorboard_histograms import EmbeddingHistograms
from trainer.tensorboard_hparams import flatten_hparams, write_final_metrics, write_hparams
from trainer.tensorboard_profiler import ProfilerWindow
from trainer.tensorboard_projector import EmbeddingProjector
from trainer.tensorboard_scalars import TrainingScalars, learning_rate_at

__all__ = [
    "EmbeddingHistograms",
    "EmbeddingProjector",
    "ProfilerWindow",
    "TrainingScalars",
    "flatten_hparams",
    "iter_summary_values",
    "learning_rate_at",
    "read_scalars",
    "read_tags",
    "write_final_metrics",
    "write_hparams",
]
