"""Tests of the item text recipe shared by the embedding job and the trainer."""

import pytest

from recstack import features
from recstack.text import item_text


@pytest.mark.parametrize(
    ("item", "text"),
    [
        (
            {
                features.TITLE: " Kind of Blue ",
                features.DESCRIPTION: "Modal jazz.",
                features.CATEGORIES: ["jazz", " modal ", ""],
            },
            "Kind of Blue\nModal jazz.\njazz, modal",
        ),
        ({features.TITLE: b"Caf\xc3\xa9", features.CATEGORIES: "jazz|blues"}, "Café\njazz, blues"),
        ({features.DESCRIPTION: "only this", features.ITEM_ID: "i1"}, "only this"),
        ({features.CATEGORIES: [b"a", "b"]}, "a, b"),
        ({features.ITEM_ID: "i1", features.TITLE: "  ", features.CATEGORIES: []}, ""),
        ({features.TITLE: None, features.DESCRIPTION: None, features.CATEGORIES: None}, ""),
    ],
)
def test_item_text_joins_title_description_and_categories(item, text):
    assert item_text(item) == text


def test_categories_of_the_wrong_type_are_named():
    with pytest.raises(TypeError, match="categories must be a list"):
        item_text({features.CATEGORIES: 3})
