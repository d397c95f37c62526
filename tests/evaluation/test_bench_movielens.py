"""`recstack bench quality --movielens DIR`: MovieLens-format data goes through the importer and
the Beam ingest into a data directory the evaluation reads."""

import numpy as np
import pytest

from evaluation.bench_quality import prepare_data
from recstack import features as F
from trainer import data
from trainer.evaluation import build_eval_set

pytestmark = pytest.mark.slow


def _write_ml100k(directory, users=40, movies=30, ratings=900, seed=0):
    """A MovieLens 100K layout (`u.item` with 19 genre flags, `u.data` tab-separated)."""
    rng = np.random.default_rng(seed)
    directory.mkdir()
    items = []
    for movie in range(1, movies + 1):
        flags = ["0"] * 19
        flags[movie % 19] = "1"
        items.append(f"{movie}|Movie {movie} (1995)|01-Jan-1995||http://x|" + "|".join(flags))
    (directory / "u.item").write_text("\n".join(items) + "\n", encoding="latin-1")
    start = 880_000_000
    lines = [
        f"{rng.integers(1, users + 1)}\t{rng.integers(1, movies + 1)}\t{rng.integers(1, 6)}\t"
        f"{start + int(t)}"
        for t in np.sort(rng.integers(0, 60 * 86400, ratings))
    ]
    (directory / "u.data").write_text("\n".join(lines) + "\n")
    return str(directory)


def test_movielens_data_is_imported_and_ingested_for_the_benchmark(tmp_path):
    source = _write_ml100k(tmp_path / "ml-100k")
    data_dir = prepare_data(str(tmp_path / "work"), None, movielens=source)
    layout = F.DataLayout(data_dir)
    train = data.read_columns(layout.train_pattern, (F.USER_ID, F.ITEM_ID, F.VALUE))
    assert len(train[F.USER_ID]) > 0
    assert set(np.unique(train[F.VALUE])) <= {1.0, 2.0, 3.0, 4.0, 5.0}  # the star ratings
    eval_set = build_eval_set(layout, 5)
    assert len(eval_set.corpus_ids) == 30 and len(eval_set.users) > 0
