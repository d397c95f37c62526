"""MovieLens importers: the 100K, 1M and CSV (20M, 25M, ml-latest, ml-latest-small) layouts.

Every layout maps the same way onto the data contract:

- each rating becomes an interaction with `event="rating"`, `value=<rating>` and the timestamp
  in epoch seconds; user and movie ids are kept as they are in the files (as strings);
- each movie becomes a catalog item with its title as given (year included, e.g.
  "Toy Story (1995)"), its genres as categories, and a description *built* from title, year and
  genres, because MovieLens ships no movie text: see `describe_movie`.

Genre "unknown" (100K) and "(no genres listed)" (CSV) mean no genre and give no category.
The 1M importer also reads MovieLens 10M, whose `ratings.dat` and `movies.dat` share the format.
"""

from __future__ import annotations

import csv
import functools
import re
from typing import Any

from apache_beam.io.filesystems import FileSystems

from beam_jobs.importers import rows
from beam_jobs.importers.rows import Rejected
from beam_jobs.importers.sink import KIND_INTERACTIONS, KIND_ITEMS, ImportSink
from beam_jobs.importers.source_files import file_exists, read_lines, source_paths

LAYOUT_100K = "movielens-100k"
LAYOUT_1M = "movielens-1m"
LAYOUT_CSV = "movielens-csv"
#: Files each layout needs, ratings first.
FILES_100K = ("u.data", "u.item")
FILES_1M = ("ratings.dat", "movies.dat")
FILES_CSV = ("ratings.csv", "movies.csv")
#: Optional 100K file naming the genre flags of `u.item` ("name|index" per line).
GENRE_FILE_100K = "u.genre"
#: The genre flags of `u.item`, in column order, used when `u.genre` is absent.
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip
#: Genre values that mean "no genre".
NO_GENRE = frozenset({"unknown", "(no genres listed)"})
RATINGS_CSV_HEADER = "userId,movieId,rating,timestamp"
MOVIES_CSV_HEADER = "movieId,title,genres"
#: 100K and 1M are latin-1; the CSV releases are UTF-8.
LEGACY_ENCODING = "latin-1"

_100K_ITEM_FIELDS = 5  # movie id | title | release date | video release date | IMDb URL
_TITLE_YEAR = re.compile(r"\((\d{4})\)\s*$")
_RELEASE_YEAR = re.compile(r"^\d{2}-[A-Za-z]{3}-(\d{4})$")


def describe_movie(title: str, genres: list[str], year: str | None = None) -> str:
    """Returns the built description of a movie: title, year, genres.

    `describe_movie("Toy Story (1995)", ["Animation", "Comedy"])` is
    `"Toy Story (1995). Genres: Animation, Comedy."`. The year is appended in parentheses when
    given and the title does not already end with it; the genre sentence is left out when there
    are no genres.

    Args:
      title: Movie title as in the files.
      genres: Genre names, already without "no genre" markers.
      year: Release year from another column (100K's release date), or None.
    """
    text = title.strip()
    if year and _TITLE_YEAR.search(text) is None:
        text = f"{text} ({year})"
    if genres:
        return f"{text}. Genres: {', '.join(genres)}."
    return f"{text}."


def _genre_list(names: list[str]) -> list[str]:
    return [name for name in names if name.strip() and name not in NO_GENRE]


def _rating_row(fields: list[str]) -> dict[str, Any]:
    """`[user id, movie id, rating, timestamp]` -> interaction row."""
    if len(fields) != 4:
        raise Rejected(
            rows.REASON_FIELD_COUNT,
            f"expected 4 fields (user id, movie id, rating, timestamp), got {len(fields)}",
        )
    user, movie, value, timestamp = fields
    return rows.interaction_row(
        rows.source_id(user, "user id"),
        rows.source_id(movie, "movie id"),
        rows.epoch_seconds(timestamp, "timestamp"),
        rows.rating(value, "rating"),
    )


def _movie_row(movie: str, title: str, genres: list[str], year: str | None = None) -> dict:
    return rows.item_row(
        rows.source_id(movie, "movie id"), title, describe_movie(title, genres, year), genres
    )


def parse_100k_rating(text: str) -> dict[str, Any]:
    """Parses one `u.data` line, `user id \\t item id \\t rating \\t timestamp`."""
    return _rating_row(text.split("\t"))


def parse_100k_item(genre_names: tuple[str, ...], text: str) -> dict[str, Any]:
    """Parses one `u.item` line: id | title | release date | video date | URL | genre flags.

    Args:
      genre_names: Names of the flag columns, in order (`GENRES_100K` or from `u.genre`).
      text: The decoded line.
    """
    fields = text.split("|")
    expected = _100K_ITEM_FIELDS + len(genre_names)
    if len(fields) != expected:
        raise Rejected(
            rows.REASON_FIELD_COUNT,
            f"expected {expected} '|'-separated fields (5 + {len(genre_names)} genre flags), "
            f"got {len(fields)}",
        )
    movie, title, release_date = fields[0], fields[1], fields[2]
    flags = fields[_100K_ITEM_FIELDS:]
    if any(flag not in ("0", "1") for flag in flags):
        raise Rejected(rows.REASON_BAD_GENRES, f"genre flags must be 0 or 1, got {flags}")
    genres = _genre_list(
        [name for name, flag in zip(genre_names, flags, strict=True) if flag == "1"]
    )
    match = _RELEASE_YEAR.match(release_date.strip())
    return _movie_row(movie, title, genres, match.group(1) if match else None)


def parse_1m_rating(text: str) -> dict[str, Any]:
    """Parses one `ratings.dat` line, `UserID::MovieID::Rating::Timestamp`."""
    return _rating_row(text.split("::"))


def parse_1m_movie(text: str) -> dict[str, Any]:
    """Parses one `movies.dat` line, `MovieID::Title::Genres` (genres `|`-separated)."""
    movie, _, rest = text.partition("::")
    title, separator, genres = rest.rpartition("::")
    if not separator:
        raise Rejected(
            rows.REASON_FIELD_COUNT, "expected 3 '::'-separated fields (MovieID, Title, Genres)"
        )
    return _movie_row(movie, title, _genre_list(genres.split("|")))


def parse_csv_rating(text: str) -> dict[str, Any]:
    """Parses one `ratings.csv` row, `userId,movieId,rating,timestamp` (never quoted)."""
    return _rating_row(text.split(","))


def parse_csv_movie(text: str) -> dict[str, Any]:
    """Parses one `movies.csv` row, `movieId,title,genres`; titles may be quoted with commas."""
    try:
        fields = next(csv.reader([text], strict=True))
    except csv.Error as e:
        raise Rejected(rows.REASON_BAD_CSV, f"not a valid CSV row ({e})") from None
    if len(fields) != 3:
        raise Rejected(
            rows.REASON_FIELD_COUNT,
            f"expected 3 fields (movieId, title, genres), got {len(fields)}; quote titles that "
            "hold commas",
        )
    movie, title, genres = fields
    return _movie_row(movie, title, _genre_list(genres.split("|")))


def read_100k_genres(path: str) -> tuple[str, ...]:
    """Reads `u.genre` ("name|index" lines, indexes 0, 1, 2, ... in order).

    Raises:
      ValueError: a line is not "name|index" or the indexes are not 0, 1, 2, ... in order.
    """
    names: list[str] = []
    for line in read_lines(path, progress=False):
        text = line.data.decode(LEGACY_ENCODING).strip()
        if not text:
            continue
        name, _, index = text.rpartition("|")
        if not name or index != str(len(names)):
            raise ValueError(
                f"{path!r} line {line.number} is {text!r}; expected 'name|{len(names)}' (genre "
                f"names with indexes 0, 1, ... in order); fix the file or delete it to use the "
                "standard 19 genres"
            )
        names.append(name)
    return tuple(names)


def import_movielens_100k(directory: str, output_dir: str, progress: bool = True) -> dict:
    """Imports MovieLens 100K (`u.data`, `u.item`, optional `u.genre`) into `output_dir`.

    Args:
      directory: The unpacked `ml-100k` directory, local or `gs://`.
      output_dir: Receives the contract's interactions and catalog files and the rejects.
      progress: Show progress bars.

    Returns:
      The import summary (see `ImportSink.summary`).

    Raises:
      FileNotFoundError: a required file is missing.
      ValueError: `u.genre` is malformed.
    """
    paths = source_paths(directory, FILES_100K, LAYOUT_100K)
    genre_path = FileSystems.join(directory, GENRE_FILE_100K)
    genres = read_100k_genres(genre_path) if file_exists(genre_path) else GENRES_100K
    with ImportSink(output_dir, progress) as sink:
        parse_item = functools.partial(parse_100k_item, genres)
        sink.import_file(paths["u.item"], KIND_ITEMS, parse_item, LEGACY_ENCODING)
        sink.import_file(paths["u.data"], KIND_INTERACTIONS, parse_100k_rating, LEGACY_ENCODING)
        return sink.summary(LAYOUT_100K)


def import_movielens_1m(directory: str, output_dir: str, progress: bool = True) -> dict:
    """Imports MovieLens 1M or 10M (`ratings.dat`, `movies.dat`) into `output_dir`.

    Arguments, return value and errors as for `import_movielens_100k`.
    """
    paths = source_paths(directory, FILES_1M, LAYOUT_1M)
    with ImportSink(output_dir, progress) as sink:
        sink.import_file(paths["movies.dat"], KIND_ITEMS, parse_1m_movie, LEGACY_ENCODING)
        sink.import_file(paths["ratings.dat"], KIND_INTERACTIONS, parse_1m_rating, LEGACY_ENCODING)
        return sink.summary(LAYOUT_1M)


def import_movielens_csv(directory: str, output_dir: str, progress: bool = True) -> dict:
    """Imports the CSV layout (`ratings.csv`, `movies.csv` with headers) into `output_dir`.

    Covers MovieLens 20M, 25M, 32M, ml-latest and ml-latest-small. Arguments and return value as
    for `import_movielens_100k`.

    Raises:
      FileNotFoundError: a required file is missing.
      ValueError: a file does not start with its expected header.
    """
    paths = source_paths(directory, FILES_CSV, LAYOUT_CSV)
    with ImportSink(output_dir, progress) as sink:
        sink.import_file(paths["movies.csv"], KIND_ITEMS, parse_csv_movie, header=MOVIES_CSV_HEADER)
        sink.import_file(
            paths["ratings.csv"], KIND_INTERACTIONS, parse_csv_rating, header=RATINGS_CSV_HEADER
        )
        return sink.summary(LAYOUT_CSV)
