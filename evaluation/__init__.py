"""Offline evaluation: accuracy and beyond-accuracy metrics against baselines, re-ranking
controls, debiasing, cold start, and the report (`recstack evaluate`)."""

import recstack  # noqa: F401  (selects Keras 2 before TensorFlow loads)
