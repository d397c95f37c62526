"""Runs the stages of the stack as one pipeline."""

import recstack  # noqa: F401  (selects Keras 2 before TensorFlow loads)
