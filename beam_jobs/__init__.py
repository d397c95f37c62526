"""Apache Beam jobs: raw logs -> TFRecords, vocabularies and statistics."""

import recstack  # noqa: F401  (selects Keras 2 before TensorFlow loads)
