"""`BertTokenization`: texts -> BERT `input_ids` and `attention_mask`, inside the graph.

The tokenization reproduces HuggingFace's `BertTokenizer` (and its fast twin): clean the text
(drop NUL, U+FFFD and control/format characters), optionally lowercase and strip accents
(NFD, then drop combining marks), split on whitespace, punctuation and CJK characters, then
greedy longest-match-first WordPiece with `##` continuations; a word over 100 bytes is
`[UNK]`. `tensorflow_text.FastBertTokenizer` does the splitting and WordPiece; the cleaning
and case folding are done here with plain string ops, because the tokenizer's own
`lower_case_nfd_strip_accents` folds with NFKC (turning "…" into "...", "ﬁ" into "fi", "ß"
into "ss"), which HuggingFace does not.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf
import tensorflow_text as tf_text
import tf_keras

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"

PAD_TOKEN = "[PAD]"
UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"

#: HuggingFace's `max_input_chars_per_word`, here counted in UTF-8 bytes.
MAX_BYTES_PER_WORD = 100

# Characters HuggingFace's BasicTokenizer deletes: NUL, U+FFFD, and control (Cc, except tab,
# newline and carriage return, which are whitespace) and format (Cf) characters.
_DELETED_CHARS = r"[\x{0}\x{fffd}\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\p{Cf}]"
_COMBINING_MARKS = r"\p{Mn}"


def _read_vocab(vocab: str | Sequence[str]) -> list[str]:
    if isinstance(vocab, str):
        with tf.io.gfile.GFile(vocab, "r") as f:
            return [line.rstrip("\n").rstrip("\r") for line in f]
    return [str(token) for token in vocab]


@tf_keras.saving.register_keras_serializable(package="recstack")
class BertTokenization(tf_keras.layers.Layer):
    """Tokenizes texts for BERT: `[CLS] word pieces [SEP]`, truncated and padded.

    The vocabulary is held by the layer (in its config and, once saved, inside the SavedModel
    graph), so a saved model never reads the original vocab.txt again.

    Args:
      vocab: Path of a `vocab.txt` (one token per line, line number = id; local or `gs://`),
        or the tokens in id order. Must contain `[PAD]`, `[UNK]`, `[CLS]` and `[SEP]`.
      lower_case: True for uncased vocabularies: lowercase and strip accents, as HuggingFace
        does with `do_lower_case=True`. False leaves the text's case and accents alone.
      max_length: Tokens per text, `[CLS]` and `[SEP]` included; longer texts lose their last
        word pieces. At least 2.
      pad_to_max_length: True pads every batch to `max_length` (static shape, needed on TPU);
        False pads to the longest text of the batch (cheaper for short texts; the tokens and
        the mask of every text are the same either way).

    Call:
      texts: string tensor `[batch]` (or `[batch, 1]`) of UTF-8 texts.
      Returns: dict of int32 tensors `[batch, max_length]` (`[batch, longest]` when
        `pad_to_max_length` is False): `input_ids`, padded with the `[PAD]` id, and
        `attention_mask`, 1 on real tokens and 0 on padding.
    """

    def __init__(
        self,
        vocab: str | Sequence[str],
        lower_case: bool,
        max_length: int,
        pad_to_max_length: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if max_length < 2:
            raise ValueError(f"max_length={max_length} must be >= 2 ([CLS] and [SEP])")
        self.vocab = _read_vocab(vocab)
        ids = {}
        for i, token in enumerate(self.vocab):
            ids.setdefault(token, i)
        missing = [t for t in (PAD_TOKEN, UNK_TOKEN, CLS_TOKEN, SEP_TOKEN) if t not in ids]
        if missing:
            where = vocab if isinstance(vocab, str) else f"the {len(self.vocab)}-token vocab"
            raise ValueError(
                f"{where} lacks the special tokens {missing}; pass a BERT WordPiece vocabulary"
            )
        self.lower_case = bool(lower_case)
        self.max_length = int(max_length)
        self.pad_to_max_length = bool(pad_to_max_length)
        self.pad_id = ids[PAD_TOKEN]
        self.cls_id = ids[CLS_TOKEN]
        self.sep_id = ids[SEP_TOKEN]
        self._wordpiece = tf_text.FastBertTokenizer(
            vocab=self.vocab,
            token_out_type=tf.int32,
            unknown_token=UNK_TOKEN,
            max_bytes_per_word=MAX_BYTES_PER_WORD,
            lower_case_nfd_strip_accents=False,
        )

    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """HuggingFace's text cleaning and (when `lower_case`) case and accent folding.

        Args:
          texts: string tensor of any shape.

        Returns:
          string tensor of the same shape.
        """
        texts = tf.strings.regex_replace(texts, _DELETED_CHARS, "")
        if self.lower_case:
            texts = tf.strings.lower(texts, encoding="utf-8")
            texts = tf_text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, _COMBINING_MARKS, "")
        return texts

    def call(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        texts = tf.convert_to_tensor(texts)
        if texts.dtype != tf.string:
            raise TypeError(f"BertTokenization takes a string tensor, got {texts.dtype.name}")
        if texts.shape.rank == 2 and texts.shape[1] == 1:
            texts = tf.squeeze(texts, axis=1)
        if texts.shape.rank != 1:
            raise ValueError(
                f"BertTokenization takes texts of shape [batch] or [batch, 1], got {texts.shape}"
            )
        pieces = self._wordpiece.tokenize(self.normalize(texts))[:, : self.max_length - 2]
        # Dense from here on: [CLS] pieces [PAD]..., then [SEP] written after the last piece.
        body_shape = [None, self.max_length - 2] if self.pad_to_max_length else None
        body = pieces.to_tensor(default_value=self.pad_id, shape=body_shape)
        column = tf.ones([tf.shape(texts)[0], 1], tf.int32)  # Not from `body`: it may be empty.
        input_ids = tf.concat([column * self.cls_id, body, column * self.pad_id], axis=1)
        lengths = tf.cast(pieces.row_lengths(), tf.int32) + 2
        width = tf.shape(input_ids)[1]
        last = tf.range(width)[tf.newaxis, :] == lengths[:, tf.newaxis] - 1
        input_ids = tf.where(last, self.sep_id, input_ids)
        mask = tf.sequence_mask(lengths, width, dtype=tf.int32)
        return {INPUT_IDS: input_ids, ATTENTION_MASK: mask}

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            vocab=list(self.vocab),
            lower_case=self.lower_case,
            max_length=self.max_length,
            pad_to_max_length=self.pad_to_max_length,
        )
        return config
