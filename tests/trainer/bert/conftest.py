"""Shared checkpoints of the BERT tests: the installed all-MiniLM-L6-v2 and a tiny random BERT."""

import pytest

from trainer.bert.checkpoint import default_checkpoint_dir, load_checkpoint
from trainer.bert.tiny import write_tiny_bert

#: Layers of the tiny BERT: 3, so that fine-tuning the top 2 differs from training all.
TINY_LAYERS = 3  # Repeated in test_bert_encoder.py (conftest modules are not importable).


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A 3-layer, 32-wide random BERT whose weight names carry the `bert.` prefix."""
    return write_tiny_bert(
        str(tmp_path_factory.mktemp("tiny_bert")), layers=TINY_LAYERS, prefix="bert."
    )


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """`(config, weights)` of the tiny BERT."""
    return load_checkpoint(tiny_dir)


@pytest.fixture(scope="session")
def minilm_dir():
    return default_checkpoint_dir()


@pytest.fixture(scope="session")
def minilm(minilm_dir):
    """`(config, weights)` of all-MiniLM-L6-v2 (90 MB, read once)."""
    return load_checkpoint(minilm_dir)
