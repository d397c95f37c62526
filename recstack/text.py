"""The text of a catalog item, as every text encoder of the stack sees it.

The embedding job (`beam_jobs.embed_text`) encodes `item_text(item)` once per item; a trainer
that fine-tunes a text tower must feed it the same string, or the frozen vectors and the
learned ones describe different inputs. `TEXT_RECIPE` names the recipe and is stored beside the
vectors (`features.META_TEXT_RECIPE`); change it whenever `item_text` changes.

Importing this module touches no file, network or TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from recstack import features

#: Identifier of the recipe of `item_text`, written to embeddings_meta.json.
TEXT_RECIPE = "title\\ndescription\\ncategories joined by ', ' (empty parts dropped) v1"

#: Separator between the parts of an item's text.
PART_SEPARATOR = "\n"
#: Separator between an item's categories.
CATEGORY_JOINER = ", "


def _as_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else str(value)


def _categories(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        value = _as_str(value).split(features.CATEGORY_SEPARATOR)
    elif not isinstance(value, Iterable):
        raise TypeError(
            f"categories must be a list of strings or a '|'-joined string, got {value!r}"
        )
    return [c for c in (_as_str(v).strip() for v in value) if c]


def item_text(item: Mapping[str, Any]) -> str:
    """Returns the text of one catalog item: title, description and categories.

    The parts, each stripped of surrounding whitespace, are the title, the description and the
    categories joined by ", "; empty parts are dropped and the rest joined by a newline. An
    item with none of them gives "" (encoders must still return a vector for it).

    Example: `{"title": "Kind of Blue", "description": "Modal jazz.", "categories": ["jazz",
    "modal"]}` gives `"Kind of Blue\\nModal jazz.\\njazz, modal"`.

    Args:
      item: Mapping with the optional keys `features.TITLE`, `features.DESCRIPTION` (str or
        UTF-8 bytes) and `features.CATEGORIES` (list of str/bytes, or a "|"-joined string).
        Other keys are ignored.

    Returns:
      The item's text; never None.

    Raises:
      TypeError: `categories` is neither a string nor a list.
    """
    parts = [
        _as_str(item.get(features.TITLE)).strip(),
        _as_str(item.get(features.DESCRIPTION)).strip(),
        CATEGORY_JOINER.join(_categories(item.get(features.CATEGORIES))),
    ]
    return PART_SEPARATOR.join(part for part in parts if part)
