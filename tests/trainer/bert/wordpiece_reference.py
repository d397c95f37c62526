"""BERT's uncased tokenization in plain Python, from its definition, as the tests' reference.

Clean (drop NUL, U+FFFD, control and format characters; whitespace becomes a space), put
spaces around CJK ideographs, split on whitespace, lowercase, NFD and drop combining marks,
split off every punctuation character (ASCII symbols count as punctuation), then WordPiece:
greedy longest match from the left, continuations prefixed `##`, a word with no match or over
100 characters becomes `[UNK]`.
"""

import unicodedata

_CJK = [
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
]


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _clean(text: str) -> str:
    out = []
    for char in text:
        category = unicodedata.category(char)
        if char in "\t\n\r" or category == "Zs":
            out.append(" ")
        elif ord(char) in (0, 0xFFFD) or category in ("Cc", "Cf"):
            continue
        elif any(lo <= ord(char) <= hi for lo, hi in _CJK):
            out.append(f" {char} ")
        else:
            out.append(char)
    return "".join(out)


def _words(text: str) -> list[str]:
    words = []
    for token in _clean(text).split():
        token = unicodedata.normalize("NFD", token.lower())
        token = "".join(c for c in token if unicodedata.category(c) != "Mn")
        current = ""
        for char in token:
            if _is_punctuation(char):
                words += [current, char] if current else [char]
                current = ""
            else:
                current += char
        if current:
            words.append(current)
    return words


def _wordpiece(word: str, ids: dict[str, int]) -> list[int]:
    if len(word) > 100:
        return [ids["[UNK]"]]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else "##" + word[start:end]
            if piece in ids:
                pieces.append(ids[piece])
                start = end
                break
        else:
            return [ids["[UNK]"]]
    return pieces


def encode(text: str, vocab: list[str]) -> list[int]:
    """The ids of `[CLS] word pieces [SEP]` for an uncased vocabulary, without truncation."""
    ids = {token: i for i, token in reversed(list(enumerate(vocab)))}
    pieces = [i for word in _words(text) for i in _wordpiece(word, ids)]
    return [ids["[CLS]"], *pieces, ids["[SEP]"]]
