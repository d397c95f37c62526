"""Names inside the pipeline's artifact directories (shared by the stages, the runner and the
Pusher)."""

#: Trainer artifact: the training run (checkpoints, TensorBoard, metrics.json).
RUN_SUBDIR = "run"
#: Trainer artifact: the exported SavedModels, `<model>/<version>/`.
SERVING_SUBDIR = "serving"
STATISTICS_FILE = "statistics.json"
SCHEMA_FILE = "schema.json"
ANOMALIES_FILE = "anomalies.json"
EVALUATION_FILE = "evaluation.json"
#: Blessing artifact markers (TFX's names): an empty file saying the verdict.
BLESSED_FILE, NOT_BLESSED_FILE = "BLESSED", "NOT_BLESSED"
PUSHED_FILE = "pushed.json"
TENSORBOARD_SUBDIR = "tensorboard"
