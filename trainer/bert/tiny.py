"""`write_tiny_bert`: a small randomly initialised BERT checkpoint, for tests and smoke runs.

It has the layout of a real checkpoint (`trainer.bert.checkpoint`) and an uncased English
WordPiece vocabulary small enough to read, so every code path that loads MiniLM can run on it
in milliseconds. Its vectors mean nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import numpy as np

from trainer.bert.checkpoint import (
    CONFIG_FILE,
    TOKENIZER_CONFIG_FILE,
    VOCAB_FILE,
    WEIGHTS_FILE,
    BertConfig,
    weight_names,
)

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_WORDS = """
the of and to a in is it you that he was for on are with as i his they be at one have this
from or had by not word but what some we can out other were all there when up use your how
said an each she which do their time if will way about many then them write would like so
these her long make thing see him two has look more day could go come did number sound no
most people my over know water than call first who may down side been now find any new work
part take get place made live where after back little only round man year came show every
good me give our under name very through just form great think say help low line before turn
cause same mean differ move right boy old too does tell sentence set three want air well also
play small end put home read hand port large spell add even land here must big high such
follow act why ask men change went light kind off need house picture try us again animal
point mother world near build self earth father blue jazz modal train hard bop music album
song book movie film love night red green black white rock pop star story life city music
""".split()
_SUFFIXES = ("s", "ed", "ing", "er", "est", "ly", "ion", "al", "able", "ness", "ment", "ize")
_PUNCTUATION = tuple(".,!?;:'\"()[]{}-_/&@#$%*+=<>|~`^\\")


def tiny_vocab(words: Sequence[str] = ()) -> list[str]:
    """The tiny vocabulary: special tokens, punctuation, digits, letters, `##` letters and
    suffixes, English words, then `words`, without duplicates. Any lowercase ASCII text
    tokenizes without `[UNK]`."""
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    digits = [str(d) for d in range(10)]
    tokens = [
        *SPECIAL_TOKENS,
        *_PUNCTUATION,
        *digits,
        *letters,
        *(f"##{c}" for c in letters + digits),
        *(f"##{s}" for s in _SUFFIXES),
        *_WORDS,
        *words,
    ]
    return list(dict.fromkeys(tokens))


def _normal(rng: np.random.Generator, shape: Sequence[int], std: float) -> np.ndarray:
    return rng.normal(0.0, std, size=shape).astype(np.float32)


def _linear_shape(name: str, config: BertConfig) -> tuple[int, int]:
    """`[out, in]` of the Linear layer a weight name belongs to."""
    hidden, inner = config.hidden_size, config.intermediate_size
    if ".intermediate.dense." in name:
        return inner, hidden
    if ".output.dense." in name and ".attention." not in name:
        return hidden, inner
    return hidden, hidden


def tiny_weights(config: BertConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights for `config`, HuggingFace-named and shaped (Linear weights `[out, in]`).

    LayerNorm scales are near 1 and biases are non-zero so that a model mixing up scale and
    bias, or forgetting a transpose, gives visibly different outputs.
    """
    rng = np.random.default_rng(seed)
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, config.hidden_size),
        "embeddings.position_embeddings.weight": (
            config.max_position_embeddings,
            config.hidden_size,
        ),
        "embeddings.token_type_embeddings.weight": (config.type_vocab_size, config.hidden_size),
    }
    weights: dict[str, np.ndarray] = {}
    for name in weight_names(config):
        if name in shapes:
            weights[name] = _normal(rng, shapes[name], 0.5)
        elif "LayerNorm" in name:
            base = 1.0 if name.endswith(".weight") else 0.0
            weights[name] = base + _normal(rng, [config.hidden_size], 0.1)
        else:
            out, in_ = _linear_shape(name, config)
            shape = [out, in_] if name.endswith(".weight") else [out]
            weights[name] = _normal(rng, shape, 0.15)
    # A real checkpoint carries these too; loaders must ignore them.
    weights["embeddings.position_ids"] = np.arange(config.max_position_embeddings)[None]
    weights["pooler.dense.weight"] = _normal(rng, [config.hidden_size, config.hidden_size], 0.1)
    weights["pooler.dense.bias"] = _normal(rng, [config.hidden_size], 0.1)
    return weights


def write_tiny_bert(
    directory: str,
    seed: int = 0,
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    intermediate: int = 64,
    vocab: Sequence[str] | None = None,
    max_position_embeddings: int = 128,
    prefix: str = "",
) -> str:
    """Writes a random BERT checkpoint: config.json, model.safetensors, vocab.txt and
    tokenizer_config.json (uncased).

    Args:
      directory: Where to write (created if needed).
      seed: Seed of the weights; equal arguments give identical files.
      hidden: `hidden_size`.
      layers: `num_hidden_layers`.
      heads: `num_attention_heads`; must divide `hidden`.
      intermediate: `intermediate_size`.
      vocab: Tokens in id order; `tiny_vocab()` when None. Must hold the BERT special tokens.
      max_position_embeddings: Longest sequence.
      prefix: Prefix of every weight name, "" or "bert." (both exist in the wild).

    Returns:
      `directory`.

    Raises:
      ValueError: the architecture is invalid or `vocab` lacks a special token.
    """
    from safetensors.numpy import save_file  # Lazy: writing checkpoints is test-only.

    tokens = list(vocab) if vocab is not None else tiny_vocab()
    missing = [t for t in SPECIAL_TOKENS[:4] if t not in tokens]
    if missing:
        raise ValueError(f"vocab lacks the special tokens {missing}")
    config = BertConfig(
        vocab_size=len(tokens),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=max_position_embeddings,
    )
    os.makedirs(directory, exist_ok=True)
    weights = {f"{prefix}{k}": v for k, v in tiny_weights(config, seed).items()}
    save_file(weights, os.path.join(directory, WEIGHTS_FILE))
    with open(os.path.join(directory, CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump({"model_type": "bert", **config.to_dict()}, f, indent=2)
    with open(os.path.join(directory, TOKENIZER_CONFIG_FILE), "w", encoding="utf-8") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f, indent=2)
    with open(os.path.join(directory, VOCAB_FILE), "w", encoding="utf-8") as f:
        f.writelines(f"{token}\n" for token in tokens)
    return directory
