"""Tests of `BertTokenization` on the all-MiniLM-L6-v2 vocabulary and the tiny one."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import wordpiece_reference

from trainer.bert.checkpoint import read_vocab
from trainer.bert.tokenizer import ATTENTION_MASK, INPUT_IDS, BertTokenization

#: Ids HuggingFace's tokenizer (tokenizers 0.23, the checkpoint's tokenizer.json) gives.
HF_IDS = {
    "Héllo, World! Café naïve résumé — unaffable tokenization.": [
        101,
        7592,
        1010,
        2088,
        999,
        7668,
        15743,
        13746,
        1517,
        14477,
        20961,
        3468,
        19204,
        3989,
        1012,
        102,
    ],  # fmt: skip
    # Compatibility characters stay as they are ("ﬁ", "…", "ß" are not NFKC-folded).
    "The ﬁnest Straße… “quoted” (1999) $5.99!": [
        101,
        1996,
        1984,
        5267,
        2102,
        2358,
        27807,
        1529,
        1523,
        9339,
        1524,
        1006,
        2639,
        1007,
        1002,
        1019,
        1012,
        5585,
        999,
        102,
    ],  # fmt: skip
    "Kind of Blue\nModal jazz, é\njazz, modal": [
        101,
        2785,
        1997,
        2630,
        16913,
        2389,
        4166,
        1010,
        1041,
        4166,
        1010,
        16913,
        2389,
        102,
    ],  # fmt: skip
    "": [101, 102],
}

#: English with punctuation, accents, digits, a control character, CJK and a long word.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Don't stop-believing!!! (1999) $5.99 @home #tag C++ & C#: 3/4 = 0.75; a_b|c~d",
    "naïveté coöperate façade piñata jalapeño ÀÉÎÕÜ",
    "tab\there\r\nnewline\x00gone \u200bzero-width",
    "中文字符 and 日本語 between words",
    "supercalifragilisticexpialidocious " + "z" * 101,
]


@pytest.fixture(scope="module")
def vocab(minilm_dir):
    return read_vocab(minilm_dir)


@pytest.fixture(scope="module")
def tokenizer(vocab):
    return BertTokenization(vocab, lower_case=True, max_length=64)


def _real_ids(outputs):
    ids = outputs[INPUT_IDS].numpy()
    mask = outputs[ATTENTION_MASK].numpy()
    return [row[m == 1].tolist() for row, m in zip(ids, mask, strict=True)]


def test_ids_match_huggingface(tokenizer):
    assert _real_ids(tokenizer(tf.constant(list(HF_IDS)))) == list(HF_IDS.values())


def test_ids_match_the_python_wordpiece_reference(tokenizer, vocab):
    expected = [wordpiece_reference.encode(s, vocab) for s in SENTENCES]
    assert any(vocab[i].startswith("##") for ids in expected for i in ids)
    assert _real_ids(tf.function(tokenizer)(tf.constant(SENTENCES))) == expected


def test_truncates_pads_and_masks(vocab):
    layer = BertTokenization(vocab, lower_case=True, max_length=6)
    out = layer(tf.constant(["hello world", "one two three four five six", ""]))
    assert out[INPUT_IDS].dtype == tf.int32 and out[ATTENTION_MASK].dtype == tf.int32
    hello, world = vocab.index("hello"), vocab.index("world")
    one, two, three, four = (vocab.index(w) for w in ("one", "two", "three", "four"))
    np.testing.assert_array_equal(
        out[INPUT_IDS],
        [[101, hello, world, 102, 0, 0], [101, one, two, three, four, 102], [101, 102, 0, 0, 0, 0]],
    )
    np.testing.assert_array_equal(
        out[ATTENTION_MASK], [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]]
    )


def test_padding_to_the_longest_text_keeps_tokens_and_mask(tokenizer, vocab):
    dynamic = BertTokenization(vocab, lower_case=True, max_length=64, pad_to_max_length=False)
    fixed = tokenizer(tf.constant(SENTENCES[:3]))
    short = dynamic(tf.constant(SENTENCES[:3]))
    longest = int(fixed[ATTENTION_MASK].numpy().sum(axis=1).max())
    assert fixed[INPUT_IDS].shape == (3, 64) and short[INPUT_IDS].shape == (3, longest)
    for key in (INPUT_IDS, ATTENTION_MASK):
        np.testing.assert_array_equal(short[key], fixed[key][:, :longest])


@pytest.mark.parametrize(("max_length", "pad"), [(2, True), (8, False)])
def test_batches_of_empty_texts_still_get_cls_and_sep(vocab, max_length, pad):
    layer = BertTokenization(vocab, lower_case=True, max_length=max_length, pad_to_max_length=pad)
    out = layer(tf.constant(["", " \n"]))
    np.testing.assert_array_equal(out[INPUT_IDS], [[101, 102], [101, 102]])
    np.testing.assert_array_equal(out[ATTENTION_MASK], [[1, 1], [1, 1]])
    if max_length == 2:
        assert _real_ids(layer(tf.constant(["many words here"]))) == [[101, 102]]


def test_cased_vocabulary_keeps_case_and_accents():
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "Café", "cafe", "!"]
    cased = BertTokenization(vocab, lower_case=False, max_length=8)
    uncased = BertTokenization(vocab, lower_case=True, max_length=8)
    assert _real_ids(cased(tf.constant(["Café!"]))) == [[2, 4, 6, 3]]
    assert _real_ids(uncased(tf.constant(["Café!"]))) == [[2, 5, 6, 3]]


def test_saved_model_holds_the_vocabulary(tmp_path, minilm_dir):
    vocab_path = str(tmp_path / "vocab.txt")
    shutil.copy(os.path.join(minilm_dir, "vocab.txt"), vocab_path)
    module = tf.Module()
    module.tokenizer = BertTokenization(vocab_path, lower_case=True, max_length=16)
    module.tokenize = tf.function(
        lambda texts: module.tokenizer(texts), input_signature=[tf.TensorSpec([None], tf.string)]
    )
    texts = tf.constant(list(HF_IDS)[:2])
    expected = module.tokenize(texts)
    tf.saved_model.save(module, str(tmp_path / "saved"))
    os.remove(vocab_path)
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    for key, value in loaded.tokenize(texts).items():
        np.testing.assert_array_equal(value, expected[key])


def test_get_config_round_trip(vocab):
    layer = BertTokenization(vocab, lower_case=True, max_length=12, pad_to_max_length=False)
    config = layer.get_config()
    assert config["vocab"] == vocab and config["max_length"] == 12
    clone = BertTokenization.from_config(config)
    assert clone.get_config() == config
    texts = tf.constant(SENTENCES[:2])
    for key, value in clone(texts).items():
        np.testing.assert_array_equal(value, layer(texts)[key])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[CLS\]'\]"):
        BertTokenization(["[PAD]", "[UNK]", "[SEP]", "a"], lower_case=True, max_length=8)
    layer = BertTokenization(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"], lower_case=True, max_length=4
    )
    with pytest.raises(ValueError, match="max_length=1"):
        BertTokenization(layer.vocab, lower_case=True, max_length=1)
    with pytest.raises(ValueError, match=r"shape \[batch\] or \[batch, 1\], got \(2, 2\)"):
        layer(tf.constant([["a", "b"], ["c", "d"]]))
    np.testing.assert_array_equal(
        layer(tf.constant([["a"], ["b"]]))[INPUT_IDS], [[2, 4, 3, 0], [2, 1, 3, 0]]
    )
