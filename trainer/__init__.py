"""TFRS training and SavedModel export."""

import recstack  # noqa: F401  (selects Keras 2 before TensorFlow loads)
