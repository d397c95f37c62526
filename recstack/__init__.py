"""recstack: a production recommender stack on TensorFlow Recommenders.

TFRS works with Keras 2 only. TensorFlow picks its Keras at first import, so every package of
the stack imports this one first, which selects Keras 2 (`tf_keras`) unless the user already
chose. This is the only import-time effect in the code base.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
