"""The `recstack` command line: generate -> ingest (with a users table) -> embed."""

import json
import os

import numpy as np
import pytest

from beam_jobs.embeddings import read_embeddings
from beam_jobs.hashing_encoder import save_hashing_encoder
from recstack import features as F
from recstack.cli import main

IN_MEMORY = ["--direct_running_mode=in_memory"]


@pytest.mark.slow
def test_generate_ingest_and_embed_from_the_command_line(tmp_path, capsys):
    raw, data, vectors = (str(tmp_path / d) for d in ("raw", "data", "vectors"))
    main(["generate", "--output", raw, "--num-users", "60", "--num-items", "40", "--seed", "3"])
    with open(os.path.join(raw, F.RAW_USERS_FILE), encoding="utf-8") as f:
        users = [json.loads(line) for line in f]
    assert len(users) == 60 and set(users[0]) == {F.USER_ID, "country", "age_band"}

    main([
        "ingest", "--interactions", os.path.join(raw, F.RAW_INTERACTIONS_FILE),
        "--items", os.path.join(raw, F.RAW_ITEMS_FILE),
        "--users", os.path.join(raw, F.RAW_USERS_FILE),
        "--output", data, *IN_MEMORY,
    ])  # fmt: skip
    printed = capsys.readouterr().out
    assert "Events per split" in printed and F.DataLayout(data).stats in printed
    with open(F.DataLayout(data).stats, encoding="utf-8") as f:
        stats = json.load(f)
    assert stats[F.STAT_USER_ROWS] == 60
    assert stats[F.STAT_USER_ATTRIBUTES] == ["country", "age_band"]  # From tfx_config/demo.yaml.
    with open(F.DataLayout(data).summary, encoding="utf-8") as f:
        assert "item popularity Gini" in f.read()

    encoder = save_hashing_encoder(str(tmp_path / "encoder"), dim=8)
    main(["embed", "--data", data, "--model", encoder, "--output", vectors, *IN_MEMORY])
    meta = json.loads(capsys.readouterr().out)
    ids, matrix = read_embeddings(os.path.join(vectors, f"{F.EMBEDDINGS_PREFIX}-*"))
    assert meta[F.META_COUNT] == len(ids) == 40 and matrix.shape == (40, 8)
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)
