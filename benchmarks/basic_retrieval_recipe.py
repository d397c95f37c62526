"""The TFRS basic-retrieval recipe, the baseline of `bench_train.py`.

The recipe lives in `evaluation.recipe` (it is also a baseline of `recstack evaluate`); this
module keeps the benchmark's `from basic_retrieval_recipe import ...` working.
"""

from evaluation.recipe import (  # noqa: F401  (re-exported)
    DIM,
    LEARNING_RATE,
    TUTORIAL_BATCH_SIZE,
    BasicRetrieval,
    train_and_evaluate,
)
