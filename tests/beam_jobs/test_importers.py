"""Tests of the dataset importers on small files written here in each public layout.

Every expected row below is written out by hand from the source lines, not computed by the
importers' own functions.
"""

import gzip
import json

import pytest

from beam_jobs.importers import (
    REJECTS_FILE,
    detect_layout,
    import_amazon,
    import_dataset,
    import_movielens_1m,
    import_movielens_100k,
    import_movielens_csv,
)
from recstack import features

#: MovieLens 100K `u.item` genre flags of Animation, Children's, Comedy (columns 3, 4, 5).
TOY_STORY_FLAGS = "0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0"
#: Drama (8) and Romance (14).
DRAMA_ROMANCE_FLAGS = "0|0|0|0|0|0|0|0|1|0|0|0|0|0|1|0|0|0|0"
#: Only "unknown" (0).
UNKNOWN_FLAGS = "1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0"


def _write(path, lines, encoding="utf-8"):
    path.write_bytes("".join(line + "\n" for line in lines).encode(encoding))
    return str(path)


def _read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def _outputs(out):
    return (
        _read_jsonl(out / features.RAW_INTERACTIONS_FILE),
        _read_jsonl(out / features.RAW_ITEMS_FILE),
        _read_jsonl(out / REJECTS_FILE),
    )


def _rating(user, item, timestamp, value):
    return {"user_id": user, "item_id": item, "timestamp": timestamp, "event": "rating",
            "value": value}  # fmt: skip


def _item(item, title, description, categories):
    return {"item_id": item, "title": title, "description": description,
            "categories": categories}  # fmt: skip


def _short_rejects(rejects):
    """(file name, line, raw, reason) of each reject, in file order."""
    return [(r["file"].rsplit("/", 1)[-1], r["line"], r["raw"], r["reason"]) for r in rejects]


def _write_ml100k(directory):
    directory.mkdir()
    _write(
        directory / "u.item",
        [
            f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy|{TOY_STORY_FLAGS}",
            f"2|Café Society|01-Jan-1996||http://x|{DRAMA_ROMANCE_FLAGS}",
            f"267|unknown||||{UNKNOWN_FLAGS}",
            "3|Too Short|01-Jan-1995||url|0|1",
            "4|Bad Flags (1990)|01-Jan-1990||url|2|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0",
        ],
        encoding="latin-1",
    )
    _write(
        directory / "u.data",
        [
            "196\t1\t3\t881250949",
            "186\t2\t4\t891717742",
            "22\t999\t1\t878887116",  # Movie 999 is not in the catalog: kept for ingest to judge.
            "244\t1\tx\t880606923",
            "166\t2\t5",
            "",
            "298\t1\t4\t-5",
        ],
    )
    return str(directory)


def test_movielens_100k(tmp_path):
    source = _write_ml100k(tmp_path / "ml-100k")
    out = tmp_path / "out"

    summary = import_movielens_100k(source, str(out), progress=False)

    interactions, items, rejects = _outputs(out)
    assert interactions == [
        _rating("196", "1", 881250949, 3.0),
        _rating("186", "2", 891717742, 4.0),
        _rating("22", "999", 878887116, 1.0),
    ]
    assert items == [
        _item(
            "1",
            "Toy Story (1995)",
            "Toy Story (1995). Genres: Animation, Children's, Comedy.",
            ["Animation", "Children's", "Comedy"],
        ),
        _item(
            "2",
            "Café Society",
            "Café Society (1996). Genres: Drama, Romance.",
            ["Drama", "Romance"],
        ),  # fmt: skip
        _item("267", "unknown", "unknown.", []),
    ]
    assert _short_rejects(rejects) == [
        ("u.item", 4, "3|Too Short|01-Jan-1995||url|0|1", "wrong_field_count"),
        (
            "u.item",
            5,
            "4|Bad Flags (1990)|01-Jan-1990||url|2|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0",
            "bad_genres",
        ),
        ("u.data", 4, "244\t1\tx\t880606923", "bad_rating"),
        ("u.data", 5, "166\t2\t5", "wrong_field_count"),
        ("u.data", 7, "298\t1\t4\t-5", "bad_timestamp"),
    ]
    assert "'x'" in rejects[2]["detail"] and "'-5'" in rejects[4]["detail"]
    assert summary["rows_read"] == 11
    assert summary["interactions_written"] == 3
    assert summary["items_written"] == 3
    assert summary["rejected"] == 5
    assert summary["rejects"] == {
        "bad_genres": 1,
        "bad_rating": 1,
        "bad_timestamp": 1,
        "wrong_field_count": 2,
    }
    assert summary["layout"] == "movielens-100k"
    assert summary["outputs"]["rejects"] == str(out / REJECTS_FILE)


def test_movielens_100k_reads_genre_names_from_u_genre(tmp_path):
    source = tmp_path / "ml-100k"
    source.mkdir()
    _write(source / "u.genre", ["unknown|0", "Noir|1", "Épopée|2", ""], encoding="latin-1")
    _write(source / "u.item", ["7|Night (1950)|01-Jan-1950||url|0|1|1"], encoding="latin-1")
    _write(source / "u.data", ["1\t7\t5\t100"])

    import_movielens_100k(str(source), str(tmp_path / "out"), progress=False)

    _, items, _ = _outputs(tmp_path / "out")
    assert items == [
        _item("7", "Night (1950)", "Night (1950). Genres: Noir, Épopée.", ["Noir", "Épopée"])
    ]


def test_movielens_100k_rejects_a_malformed_u_genre(tmp_path):
    source = tmp_path / "ml-100k"
    source.mkdir()
    _write(source / "u.genre", ["unknown|0", "Noir|5"])
    _write(source / "u.item", [])
    _write(source / "u.data", [])
    with pytest.raises(ValueError, match=r"'Noir\|5'; expected 'name\|1'"):
        import_movielens_100k(str(source), str(tmp_path / "out"), progress=False)


def test_movielens_1m(tmp_path):
    source = tmp_path / "ml-1m"
    source.mkdir()
    _write(
        source / "movies.dat",
        [
            "1::Toy Story (1995)::Animation|Children's|Comedy",
            "2::Café au Lait (1993)::Comedy",
            "3::No Separators",
        ],
        encoding="latin-1",
    )
    _write(
        source / "ratings.dat",
        ["1::1::5::978300760", "1::2::3.5::978302109", "2::3::4::978301968", "bad line"],
    )
    out = tmp_path / "out"

    summary = import_movielens_1m(str(source), str(out), progress=False)

    interactions, items, rejects = _outputs(out)
    assert interactions == [
        _rating("1", "1", 978300760, 5.0),
        _rating("1", "2", 978302109, 3.5),
        _rating("2", "3", 978301968, 4.0),
    ]
    assert items == [
        _item(
            "1",
            "Toy Story (1995)",
            "Toy Story (1995). Genres: Animation, Children's, Comedy.",
            ["Animation", "Children's", "Comedy"],
        ),
        _item("2", "Café au Lait (1993)", "Café au Lait (1993). Genres: Comedy.", ["Comedy"]),
    ]
    assert _short_rejects(rejects) == [
        ("movies.dat", 3, "3::No Separators", "wrong_field_count"),
        ("ratings.dat", 4, "bad line", "wrong_field_count"),
    ]
    assert (summary["rows_read"], summary["interactions_written"], summary["items_written"]) == (
        7,
        3,
        2,
    )
    assert summary["rejects"] == {"wrong_field_count": 2}


def _write_ml_csv(directory):
    directory.mkdir()
    _write(
        directory / "movies.csv",
        [
            "movieId,title,genres",
            "1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy",
            '11,"American President, The (1995)",Comedy|Drama|Romance',
            '3,"Café, Paris",(no genres listed)',
            '4,"Unclosed (1999),Drama',
            "5,Too,Many,Fields",
        ],
    )
    _write(
        directory / "ratings.csv",
        [
            "\ufeffuserId,movieId,rating,timestamp",
            "1,1,4.0,964982703",
            "1,11,0.5,964981247",
            "2,3,x,964982224",
            "2,3,4.5,1.5",
        ],
    )
    return str(directory)


def test_movielens_csv(tmp_path):
    source = _write_ml_csv(tmp_path / "ml-latest-small")
    out = tmp_path / "out"

    summary = import_movielens_csv(source, str(out), progress=False)

    interactions, items, rejects = _outputs(out)
    assert interactions == [
        _rating("1", "1", 964982703, 4.0),
        _rating("1", "11", 964981247, 0.5),
    ]
    assert items == [
        _item(
            "1",
            "Toy Story (1995)",
            "Toy Story (1995). Genres: Adventure, Animation, Children, Comedy, Fantasy.",
            ["Adventure", "Animation", "Children", "Comedy", "Fantasy"],
        ),
        _item(
            "11",
            "American President, The (1995)",
            "American President, The (1995). Genres: Comedy, Drama, Romance.",
            ["Comedy", "Drama", "Romance"],
        ),
        _item("3", "Café, Paris", "Café, Paris.", []),
    ]
    assert _short_rejects(rejects) == [
        ("movies.csv", 5, '4,"Unclosed (1999),Drama', "bad_csv"),
        ("movies.csv", 6, "5,Too,Many,Fields", "wrong_field_count"),
        ("ratings.csv", 4, "2,3,x,964982224", "bad_rating"),
        ("ratings.csv", 5, "2,3,4.5,1.5", "bad_timestamp"),
    ]
    assert summary["rows_read"] == 9  # Header lines are not rows.
    assert summary["rejects"] == {
        "bad_csv": 1,
        "bad_rating": 1,
        "bad_timestamp": 1,
        "wrong_field_count": 1,
    }


def test_movielens_csv_rejects_a_wrong_header(tmp_path):
    source = tmp_path / "ml"
    source.mkdir()
    _write(source / "movies.csv", ["movieId,title,genres"])
    _write(source / "ratings.csv", ["user,item,rating,ts", "1,1,4.0,1"])
    with pytest.raises(ValueError, match="expected the header 'userId,movieId,rating,timestamp'"):
        import_movielens_csv(str(source), str(tmp_path / "out"), progress=False)


def _gzip_lines(path, lines):
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    return str(path)


def test_amazon_2018_gzipped(tmp_path):
    reviews = _gzip_lines(
        tmp_path / "Beauty.json.gz",
        [
            json.dumps(
                {
                    "overall": 5.0,
                    "verified": True,
                    "reviewTime": "09 13, 2009",
                    "reviewerID": "A1",
                    "asin": "B001",
                    "reviewerName": "Zoë",
                    "unixReviewTime": 1252800000,
                }  # fmt: skip
            ),
            json.dumps(
                {"overall": 4.0, "reviewerID": "A2", "asin": "B002", "unixReviewTime": 1262304000}
            ),  # fmt: skip
            json.dumps({"reviewerID": "A3", "asin": "B001", "unixReviewTime": 1262304000}),
            "not json",
        ],
    )
    metadata = _gzip_lines(
        tmp_path / "meta_Beauty.json.gz",
        [
            json.dumps(
                {
                    "category": ["Beauty", "Skin Care"],
                    "description": "Café crème, rich.",
                    "title": "Crème",
                    "asin": "B001",
                },
                ensure_ascii=False,
            ),  # fmt: skip
            json.dumps(
                {
                    "categories": [["Beauty", "Hair"], ["Beauty", "Tools"]],
                    "description": ["A", "B"],
                    "title": "Comb",
                    "asin": "B002",
                }
            ),  # fmt: skip
            json.dumps({"asin": "B003", "title": "Bad", "category": [1]}),
            json.dumps({"asin": "B004", "title": "Both", "categories": ["X"], "category": "Y"}),
        ],
    )
    out = tmp_path / "out"

    summary = import_amazon(reviews, metadata, str(out), progress=False)

    interactions, items, rejects = _outputs(out)
    assert interactions == [
        _rating("A1", "B001", 1252800000, 5.0),
        _rating("A2", "B002", 1262304000, 4.0),
    ]
    assert items == [
        _item("B001", "Crème", "Café crème, rich.", ["Beauty", "Skin Care"]),
        _item("B002", "Comb", "A B", ["Beauty", "Hair", "Tools"]),
        _item("B004", "Both", "", ["X", "Y"]),
    ]
    assert _short_rejects(rejects) == [
        ("meta_Beauty.json.gz", 3, '{"asin": "B003", "title": "Bad", "category": [1]}',
         "bad_categories"),  # fmt: skip
        ("Beauty.json.gz", 3, json.dumps({"reviewerID": "A3", "asin": "B001",
                                          "unixReviewTime": 1262304000}), "missing_field"),
        ("Beauty.json.gz", 4, "not json", "bad_json"),
    ]  # fmt: skip
    assert rejects[1]["detail"] == "missing overall"
    assert summary["rows_read"] == 8
    assert summary["rejects"] == {"bad_categories": 1, "bad_json": 1, "missing_field": 1}


def test_amazon_2023(tmp_path):
    invalid_utf8 = b'\xff{"user_id": "AGQ", "parent_asin": "B07P", "rating": 1, "timestamp": 1}'
    reviews = tmp_path / "All_Beauty.jsonl"
    review_lines = [
        json.dumps(
            {
                "rating": 4.0,
                "title": "ok",
                "text": "Nice",
                "images": [],
                "asin": "B07X",
                "parent_asin": "B07P",
                "user_id": "AGX",
                "timestamp": 1588687728923,
                "helpful_vote": 2,
                "verified_purchase": True,
            }
        ),  # fmt: skip
        json.dumps({"rating": 2, "asin": "B08A", "user_id": "AGY", "timestamp": 1600000000999}),
        json.dumps({"rating": 5.0, "parent_asin": "B07P", "user_id": "AGZ", "timestamp": "soon"}),
        "[1, 2]",
        json.dumps({"asin": "B1", "rating": 5}),
    ]
    reviews.write_bytes(
        "".join(line + "\n" for line in review_lines).encode() + invalid_utf8 + b"\n"
    )
    metadata = _write(
        tmp_path / "meta_All_Beauty.jsonl",
        [
            json.dumps(
                {
                    "main_category": "All Beauty",
                    "title": "Soap",
                    "average_rating": 4.8,
                    "features": [],
                    "description": ["Gentle.", " ", "Smells nice."],
                    "price": None,
                    "parent_asin": "B07P",
                    "categories": [],
                }
            ),  # fmt: skip
            json.dumps(
                {
                    "title": "Brush",
                    "description": [],
                    "parent_asin": "B09Q",
                    "categories": ["Beauty", ["Tools", ["Brushes"]], "Beauty"],
                }
            ),  # fmt: skip
            json.dumps({"title": 5, "parent_asin": "B10"}),
            json.dumps({"title": "No id"}),
        ],
    )
    out = tmp_path / "out"

    summary = import_amazon(str(reviews), metadata, str(out), progress=False)

    interactions, items, rejects = _outputs(out)
    assert interactions == [
        _rating("AGX", "B07P", 1588687728, 4.0),  # parent_asin wins; milliseconds floored.
        _rating("AGY", "B08A", 1600000000, 2.0),  # No parent_asin: asin.
    ]
    assert items == [
        _item("B07P", "Soap", "Gentle. Smells nice.", []),
        _item("B09Q", "Brush", "", ["Beauty", "Tools", "Brushes"]),
    ]
    assert [(name, line, reason) for name, line, _, reason in _short_rejects(rejects)] == [
        ("meta_All_Beauty.jsonl", 3, "bad_text"),
        ("meta_All_Beauty.jsonl", 4, "missing_field"),
        ("All_Beauty.jsonl", 3, "bad_timestamp"),
        ("All_Beauty.jsonl", 4, "bad_json"),
        ("All_Beauty.jsonl", 5, "missing_field"),
        ("All_Beauty.jsonl", 6, "bad_encoding"),
    ]
    assert rejects[5]["raw"] == invalid_utf8.decode("utf-8", errors="replace")
    assert summary["rows_read"] == 10
    assert (summary["interactions_written"], summary["items_written"]) == (2, 2)
    assert summary["rejects"] == {
        "bad_encoding": 1,
        "bad_json": 1,
        "bad_text": 1,
        "bad_timestamp": 1,
        "missing_field": 2,
    }


def test_gz_file_that_is_not_gzip_is_a_clear_error(tmp_path):
    reviews = _write(tmp_path / "r.jsonl.gz", ["{}"])
    metadata = _write(tmp_path / "m.jsonl", [])
    with pytest.raises(ValueError, match="not valid gzip data"):
        import_amazon(reviews, metadata, str(tmp_path / "out"), progress=False)


@pytest.mark.parametrize(
    ("files", "layout"),
    [
        (["u.data", "u.item", "u.genre", "README"], "movielens-100k"),
        (["ratings.dat", "movies.dat", "users.dat"], "movielens-1m"),
        (["ratings.csv", "movies.csv", "tags.csv", "links.csv"], "movielens-csv"),
        (["All_Beauty.jsonl", "meta_All_Beauty.jsonl"], "amazon"),
        (["Books_5.json.gz", "meta_Books.json.gz"], "amazon"),
    ],
)
def test_detect_layout(tmp_path, files, layout):
    for name in files:
        (tmp_path / name).write_bytes(b"")
    assert detect_layout(str(tmp_path)) == layout


def test_detect_layout_lists_the_expected_files(tmp_path):
    (tmp_path / "ratings.csv").write_bytes(b"")
    with pytest.raises(ValueError, match=r"movielens-csv: ratings\.csv \+ movies\.csv"):
        detect_layout(str(tmp_path))


def test_detect_layout_refuses_to_guess_between_layouts(tmp_path):
    for name in ["ratings.csv", "movies.csv", "ratings.dat", "movies.dat"]:
        (tmp_path / name).write_bytes(b"")
    with pytest.raises(ValueError, match="several layouts"):
        detect_layout(str(tmp_path))


def test_import_dataset_auto_and_amazon_directory(tmp_path):
    ml = _write_ml_csv(tmp_path / "ml")
    summary = import_dataset("auto", ml, str(tmp_path / "out_ml"), progress=False)
    assert (summary["layout"], summary["interactions_written"]) == ("movielens-csv", 2)

    amazon = tmp_path / "amazon"
    amazon.mkdir()
    review = {"user_id": "U", "parent_asin": "P", "rating": 3, "timestamp": 1_700_000_000_000}
    _write(amazon / "Toys.jsonl", [json.dumps(review)])
    _write(amazon / "meta_Toys.jsonl", [json.dumps({"parent_asin": "P", "title": "Top"})])
    summary = import_dataset("amazon", str(amazon), str(tmp_path / "out_az"), progress=False)
    assert (summary["interactions_written"], summary["items_written"]) == (1, 1)
    explicit = {"reviews": str(amazon / "Toys.jsonl"), "metadata": str(amazon / "meta_Toys.jsonl")}
    summary = import_dataset("auto", explicit, str(tmp_path / "out_az2"), progress=False)
    assert summary["layout"] == "amazon"
    assert _outputs(tmp_path / "out_az2")[0] == [_rating("U", "P", 1_700_000_000, 3.0)]


def test_import_dataset_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'movielens-2m'; use one of"):
        import_dataset("movielens-2m", str(tmp_path), str(tmp_path / "out"))
    with pytest.raises(ValueError, match="reads a dataset directory"):
        import_dataset("movielens-1m", {"reviews": "r"}, str(tmp_path / "out"))
    with pytest.raises(ValueError, match="exactly the keys 'reviews' and 'metadata'"):
        import_dataset("amazon", {"reviews": "r"}, str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="lacks u.item"):
        (tmp_path / "u.data").write_bytes(b"")
        import_dataset("movielens-100k", str(tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # Nothing is written before the inputs are found.


@pytest.mark.slow
def test_ingest_reads_the_import(tmp_path):
    from beam_jobs.config import IngestConfig
    from beam_jobs.ingest import run_ingest

    out = tmp_path / "raw"
    import_movielens_100k(_write_ml100k(tmp_path / "ml-100k"), str(out))

    stats = run_ingest(
        IngestConfig(eval_days=30),
        str(out / features.RAW_INTERACTIONS_FILE),
        str(out / features.RAW_ITEMS_FILE),
        str(tmp_path / "data"),
        ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
    )

    # Movie 999 has no catalog entry: ingest dead-letters it. Of the other two ratings, the one
    # at 891717742 is within 30 days of the latest and forms the eval split.
    assert stats[features.STAT_ROWS_IN] == 3
    assert stats[features.STAT_DEAD_LETTERS] == 1
    assert (stats[features.STAT_TRAIN_ROWS], stats[features.STAT_EVAL_ROWS]) == (1, 1)
    assert stats[features.STAT_ROWS_IN] == (
        stats[features.STAT_ROWS_WRITTEN] + stats[features.STAT_DEAD_LETTERS]
    )
    assert stats[features.STAT_CATALOG_ITEMS] == 3
    assert stats[features.STAT_CATALOG_DEAD_LETTERS] == 0
