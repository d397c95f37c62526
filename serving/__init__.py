"""A TensorFlow Serving API server (gRPC) and its client."""

import recstack  # noqa: F401  (selects Keras 2 before TensorFlow loads)
