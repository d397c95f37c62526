"""The row accounting under a generated log with 5% broken rows of every kind."""

import collections
import glob
import json

import pytest

from beam_jobs.config import IngestConfig
from beam_jobs.ingest import run_ingest
from recstack import features as F
from recstack import synthetic

#: Per kind of broken row the generator writes, a fragment its dead letter's reason must hold.
REASONS = {
    "invalid_json": "invalid JSON",
    "missing_user_id": "missing user_id",
    "empty_item_id": "empty item_id",
    "bad_timestamp": "timestamp 'yesterday at noon'",
    "non_finite_value": "value must be a finite number",
    "missing_event": "missing event",
    "unknown_item_id": f"unknown item_id '{synthetic.UNKNOWN_ITEM_ID}'",
}


@pytest.mark.slow
def test_every_broken_row_is_a_dead_letter_of_its_kind_and_no_row_is_lost(tmp_path):
    config = synthetic.SyntheticConfig(
        num_users=150, num_items=120, num_topics=4, mean_events_per_user=20,
        malformed_fraction=0.05, seed=11,
    )  # fmt: skip
    data = synthetic.generate(config)
    malformed = data.truth["malformed_rows"]
    assert set(malformed) == set(REASONS) and all(malformed.values()), malformed
    paths = synthetic.write(data, str(tmp_path / "raw"))
    out = str(tmp_path / "data")

    stats = run_ingest(
        IngestConfig(), paths["interactions"], paths["items"], out,
        ["--direct_running_mode=in_memory"], users=paths["users"],
    )  # fmt: skip

    letters = []
    for path in glob.glob(F.DataLayout(out).dead_letter_pattern):
        with open(path, encoding="utf-8") as f:
            letters.extend(json.loads(line) for line in f)
    kinds = collections.Counter()
    for letter in letters:
        assert letter["source"] == "interactions" and letter["file"] == paths["interactions"]
        matched = [kind for kind, fragment in REASONS.items() if fragment in letter["reason"]]
        assert len(matched) == 1, letter
        kinds[matched[0]] += 1
        # The raw text is the line itself, at the line number given.
        assert data.interaction_lines[letter["line"] - 1] == letter["raw"]
    assert dict(kinds) == malformed
    assert stats[F.STAT_DEAD_LETTERS] == sum(malformed.values())
    assert stats[F.STAT_ROWS_IN] == len(data.interaction_lines)
    assert stats[F.STAT_ROWS_IN] == (
        stats[F.STAT_ROWS_WRITTEN] + stats[F.STAT_DEAD_LETTERS] + stats[F.STAT_DUPLICATES_DROPPED]
    )
    assert stats[F.STAT_ROWS_WRITTEN] + stats[F.STAT_DUPLICATES_DROPPED] == data.truth["valid_rows"]
    assert stats[F.STAT_USER_ROWS] == 150 and stats[F.STAT_USER_DEAD_LETTERS] == 0
