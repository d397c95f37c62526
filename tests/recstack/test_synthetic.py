"""The generator: determinism, planted structure, malformed rows."""

import json
from collections import Counter

import numpy as np
import pytest

from recstack import features as F
from recstack import synthetic

SMALL = synthetic.SyntheticConfig(
    num_users=300, num_items=240, num_topics=8, mean_events_per_user=30, seed=7
)


@pytest.fixture(scope="module")
def data():
    return synthetic.generate(SMALL)


def _rows(data):
    return [json.loads(line) for line in data.interaction_lines]


def test_same_seed_gives_identical_output_and_other_seed_differs(data):
    again = synthetic.generate(SMALL)
    assert again.interaction_lines == data.interaction_lines
    assert again.items == data.items
    other = synthetic.generate(synthetic.SyntheticConfig(**{**SMALL.__dict__, "seed": 8}))
    assert other.interaction_lines != data.interaction_lines


def test_users_interact_mostly_with_their_planted_topics(data):
    item_topics = data.truth["item_topics"]
    users = data.truth["user_topics"]
    rows = _rows(data)

    def share_in_topics(assignment):
        hits = Counter()
        totals = Counter()
        for row in rows:
            totals[row[F.USER_ID]] += 1
            if set(item_topics[row[F.ITEM_ID]]) & set(assignment[row[F.USER_ID]]):
                hits[row[F.USER_ID]] += 1
        return np.mean([hits[u] / totals[u] for u in totals])

    planted = share_in_topics(users)
    # Control: the same topic sets given to the wrong users.
    names = sorted(users)
    shifted = {u: users[names[(i + 1) % len(names)]] for i, u in enumerate(names)}
    control = share_in_topics(shifted)
    assert planted > 0.9
    assert control < 0.5


def test_item_text_reveals_its_topic(data):
    """A bag-of-words nearest-centroid classifier fit on half the items finds the other half's
    primary topic far above chance."""
    items = data.items
    vocab = sorted({w for item in items for w in (item[F.TITLE].lower() + " "
                    + item[F.DESCRIPTION]).split()})  # fmt: skip
    column = {w: i for i, w in enumerate(vocab)}
    topics = sorted({item[F.CATEGORIES][0] for item in items})
    bags = np.zeros((len(items), len(vocab)))
    for row, item in enumerate(items):
        for word in (item[F.TITLE].lower() + " " + item[F.DESCRIPTION]).split():
            bags[row, column[word]] += 1
    bags /= np.linalg.norm(bags, axis=1, keepdims=True)
    labels = np.array([topics.index(item[F.CATEGORIES][0]) for item in items])
    fit, held = np.arange(0, len(items), 2), np.arange(1, len(items), 2)
    centroids = np.stack([bags[fit][labels[fit] == t].mean(axis=0) for t in range(len(topics))])
    accuracy = np.mean(np.argmax(bags[held] @ centroids.T, axis=1) == labels[held])
    assert accuracy > 0.8  # Chance is 1/8.


def test_popularity_is_skewed_and_cold_items_never_appear(data):
    counts = Counter(row[F.ITEM_ID] for row in _rows(data))
    ordered = sorted(counts.values(), reverse=True)
    top_tenth = sum(ordered[: len(data.items) // 10])
    assert top_tenth / sum(ordered) > 0.3
    cold = set(data.truth["cold_items"])
    assert len(cold) == round(SMALL.cold_item_fraction * SMALL.num_items)
    assert not cold & set(counts)


def test_timestamps_span_the_weeks_and_mix_formats(data):
    rows = _rows(data)
    numeric = [r[F.TIMESTAMP] for r in rows if isinstance(r[F.TIMESTAMP], int)]
    iso = [r[F.TIMESTAMP] for r in rows if isinstance(r[F.TIMESTAMP], str)]
    assert max(numeric) - min(numeric) > (SMALL.weeks - 1) * 7 * 86400
    assert 0.05 < len(iso) / len(rows) < 0.15
    assert all(t.endswith("Z") and "T" in t for t in iso)


def test_malformed_rows_are_counted_and_broken():
    config = synthetic.SyntheticConfig(**{**SMALL.__dict__, "malformed_fraction": 0.05})
    data = synthetic.generate(config)
    malformed = data.truth["malformed_rows"]
    valid = data.truth["valid_rows"]
    assert sum(malformed.values()) == len(data.interaction_lines) - valid == int(0.05 * valid)
    broken = 0
    for line in data.interaction_lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            broken += 1
            continue
        value = row.get(F.VALUE, 0.0)
        if (
            not row.get(F.USER_ID)
            or not row.get(F.ITEM_ID)
            or not row.get(F.EVENT)
            or not np.isfinite(value)
            or row[F.TIMESTAMP] == "yesterday at noon"
            or row[F.ITEM_ID] == synthetic.UNKNOWN_ITEM_ID
        ):
            broken += 1
    assert broken == sum(malformed.values())


def test_write_creates_the_contract_files(tmp_path, data):
    paths = synthetic.write(data, str(tmp_path))
    assert paths["interactions"].endswith(F.RAW_INTERACTIONS_FILE)
    with open(paths["items"]) as f:
        assert [json.loads(line) for line in f] == data.items
    with open(paths["interactions"]) as f:
        assert f.read().splitlines() == data.interaction_lines


def test_invalid_config_is_rejected_with_the_value():
    with pytest.raises(ValueError, match="num_items=10"):
        synthetic.SyntheticConfig(num_items=10, num_topics=8)
