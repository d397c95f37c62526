"""Amazon reviews importer: the 2018 (McAuley lab) and 2023 (Amazon Reviews'23) JSONL layouts.

Reviews become interactions with `event="rating"` and the star rating as `value`:

- 2018: `reviewerID`, `asin`, `overall`, `unixReviewTime` (epoch seconds);
- 2023: `user_id`, `parent_asin` (or `asin` when absent), `rating`, `timestamp` (epoch
  *milliseconds*, floored to seconds).

The layout is recognised per line (`reviewerID` means 2018, `user_id` 2023), so mixed files work.
Product metadata becomes the catalog: item id from `parent_asin`, else `asin`; `title`;
`description` as a string or a list of strings (joined with spaces, blank parts dropped);
categories from `categories` then `category`, each a string or a list, nested lists flattened,
blank and repeated names dropped. Duplicate products are passed on: ingestion's
`DropDuplicateItems` resolves them. Files may be gzip-compressed (`.gz` suffix).
"""

from __future__ import annotations

import json
from typing import Any

from apache_beam.io.filesystems import FileSystems

from beam_jobs.importers import rows
from beam_jobs.importers.rows import Rejected
from beam_jobs.importers.sink import KIND_INTERACTIONS, KIND_ITEMS, ImportSink
from beam_jobs.importers.source_files import file_exists

LAYOUT = "amazon"
#: Prefix of metadata files in the published layouts (`meta_Books.json.gz` beside `Books.json.gz`).
META_PREFIX = "meta_"
#: Suffixes of the published JSONL files; `_5` marks the 2018 5-core review subsets.
JSON_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
_FIVE_CORE = "_5"
#: Metadata keys holding categories, read in this order.
_CATEGORY_KEYS = ("categories", "category")
#: 2023 timestamps are in milliseconds.
_MILLISECONDS = 1000


def _json_object(text: str) -> dict[str, Any]:
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise Rejected(rows.REASON_BAD_JSON, f"invalid JSON: {e}") from None
    if not isinstance(record, dict):
        raise Rejected(rows.REASON_BAD_JSON, f"expected a JSON object, got {type(record).__name__}")
    return record


def _product_id(record: dict[str, Any]) -> str:
    key = "parent_asin" if record.get("parent_asin") is not None else "asin"
    return rows.source_id(record.get(key), key)


def parse_review(text: str) -> dict[str, Any]:
    """Parses one review line of either layout into an interaction row."""
    record = _json_object(text)
    if "reviewerID" in record:
        user = rows.source_id(record["reviewerID"], "reviewerID")
        item = rows.source_id(record.get("asin"), "asin")
        timestamp = rows.epoch_seconds(record.get("unixReviewTime"), "unixReviewTime")
        value = rows.rating(record.get("overall"), "overall")
    elif "user_id" in record:
        user = rows.source_id(record["user_id"], "user_id")
        item = _product_id(record)
        timestamp = rows.epoch_seconds(record.get("timestamp"), "timestamp", _MILLISECONDS)
        value = rows.rating(record.get("rating"), "rating")
    else:
        raise Rejected(
            rows.REASON_MISSING_FIELD,
            f"no reviewerID (2018 layout) or user_id (2023 layout); keys are {sorted(record)}",
        )
    return rows.interaction_row(user, item, timestamp, value)


def _text(value: Any, name: str) -> str:
    """A string, or a list of strings joined with spaces; None is ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return " ".join(part.strip() for part in value if part.strip())
    raise Rejected(
        rows.REASON_BAD_TEXT, f"{name} must be a string or a list of strings, got {value!r}"
    )


def _flatten(value: Any, name: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [name_ for part in value for name_ in _flatten(part, name)]
    raise Rejected(
        rows.REASON_BAD_CATEGORIES,
        f"{name} must hold strings or lists of strings, got {value!r}",
    )


def _categories(record: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for key in _CATEGORY_KEYS:
        if record.get(key) is not None:
            names.extend(part.strip() for part in _flatten(record[key], key))
    return list(dict.fromkeys(name for name in names if name))


def parse_product(text: str) -> dict[str, Any]:
    """Parses one product-metadata line of either layout into a catalog row."""
    record = _json_object(text)
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise Rejected(rows.REASON_BAD_TEXT, f"title must be a string, got {title!r}")
    return rows.item_row(
        _product_id(record),
        (title or "").strip(),
        _text(record.get("description"), "description"),
        _categories(record),
    )


def find_amazon_files(directory: str) -> dict[str, str]:
    """Finds the one reviews/metadata pair in `directory` by the published file names.

    A metadata file `meta_<name><suffix>` pairs with `<name>` or `<name>_5` (2018 5-core) plus
    any suffix of `JSON_SUFFIXES`, e.g. `meta_All_Beauty.jsonl` with `All_Beauty.jsonl`.

    Returns:
      {"reviews": path, "metadata": path}.

    Raises:
      ValueError: no pair, or several; the message lists what was found.
    """
    pairs = amazon_pairs(directory)
    if len(pairs) != 1:
        found = "none" if not pairs else "; ".join(f"{r} + {m}" for r, m in pairs)
        raise ValueError(
            f"expected exactly one Amazon reviews/metadata pair (<name>.jsonl[.gz] + "
            f"{META_PREFIX}<name>.jsonl[.gz]) in {directory!r}, found {found}; pass the files "
            'explicitly as {"reviews": ..., "metadata": ...}'
        )
    reviews, metadata = pairs[0]
    return {"reviews": reviews, "metadata": metadata}


def amazon_pairs(directory: str) -> list[tuple[str, str]]:
    """Returns the (reviews, metadata) path pairs in `directory` (see `find_amazon_files`)."""
    pattern = FileSystems.join(directory, "*")
    paths = [m.path for m in FileSystems.match([pattern])[0].metadata_list]
    by_name = {path.rsplit("/", 1)[-1]: path for path in paths}
    pairs = []
    for name, path in sorted(by_name.items()):
        stem = _stem(name)
        if stem is None or not name.startswith(META_PREFIX):
            continue
        base = stem.removeprefix(META_PREFIX)
        for other, other_path in sorted(by_name.items()):
            if _stem(other) in (base, base + _FIVE_CORE):
                pairs.append((other_path, path))
    return pairs


def _stem(name: str) -> str | None:
    for suffix in sorted(JSON_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return None


def import_amazon(reviews: str, metadata: str, output_dir: str, progress: bool = True) -> dict:
    """Imports Amazon reviews and product metadata (2018 or 2023 layout) into `output_dir`.

    Args:
      reviews: JSONL reviews file, local or `gs://`, `.gz` for gzip.
      metadata: JSONL product-metadata file of the same category.
      output_dir: Receives the contract's interactions and catalog files and the rejects.
      progress: Show progress bars.

    Returns:
      The import summary (see `ImportSink.summary`).

    Raises:
      FileNotFoundError: a file is missing (checked before any output is written).
    """
    for name, path in (("reviews", reviews), ("metadata", metadata)):
        if not file_exists(path):
            raise FileNotFoundError(
                f"Amazon {name} file {path!r} does not exist; pass the path of the {name} JSONL "
                "file (.jsonl, .json or .gz)"
            )
    with ImportSink(output_dir, progress) as sink:
        sink.import_file(metadata, KIND_ITEMS, parse_product)
        sink.import_file(reviews, KIND_INTERACTIONS, parse_review)
        return sink.summary(LAYOUT)
