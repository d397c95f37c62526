"""Synthetic interaction logs and an item catalog with structure a good model can find.

The planted structure:
  * `num_topics` latent topics, each with its own vocabulary of made-up words and a name that
    doubles as a category;
  * every item belongs to one primary topic (sometimes a second one); its title and description
    are drawn mostly from its topics' vocabularies, so text alone reveals the topic;
  * item popularity is Zipf-like (weight ~ 1 / rank**zipf_exponent);
  * every user prefers a few topics (Dirichlet weights) and picks items of a chosen topic by
    popularity, with a small share of uniformly random exploration;
  * timestamps spread over `weeks` weeks; a share of catalog items never gets an interaction
    (cold start).

`generate` is deterministic for a given config (numpy `default_rng(seed)`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
from typing import Any

import numpy as np
from tqdm import tqdm

from recstack import features as F

_TOPIC_NAMES = (
    "jazz", "rock", "science", "cooking", "travel", "history", "fitness", "gaming", "finance",
    "poetry", "gardening", "astronomy", "fashion", "cinema", "robotics", "wildlife",
    "architecture", "comics", "sailing", "chess",
)  # fmt: skip
_SYLLABLES = (
    "ka", "lo", "mi", "ru", "ten", "vor", "sa", "qui", "del", "bra", "zen", "pho", "lin", "mar",
    "tos", "gri", "fen", "dul", "nox", "pra", "vel", "sko", "tar", "wen", "yul", "cor", "bin",
)  # fmt: skip
_COMMON_WORDS = (
    "the", "a", "new", "great", "complete", "guide", "classic", "modern", "edition", "best",
    "simple", "deluxe", "essential", "collection", "of", "and", "with", "for", "series", "vol",
)  # fmt: skip
_WORDS_PER_TOPIC = 40
_EVENT_PROBS = (0.6, 0.3, 0.1)  # Matches F.EVENT_TYPES.
_MALFORMED_KINDS = (
    "invalid_json",
    "missing_user_id",
    "empty_item_id",
    "bad_timestamp",
    "non_finite_value",
    "missing_event",
    "unknown_item_id",
)
#: Item id of the "unknown_item_id" kind: well-formed, but in no catalog.
UNKNOWN_ITEM_ID = "not-in-catalog"


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and shape of the generated data.

    Attributes:
      num_users: Users with at least `min_events_per_user` events.
      num_items: Catalog items (including cold ones).
      num_topics: Latent topics; the first 20 have readable names.
      max_topics_per_user: Each user prefers between 1 and this many topics.
      mean_events_per_user: Mean of the (geometric) number of events per user.
      min_events_per_user: Floor of the number of events per user.
      weeks: Timestamps spread uniformly over this many weeks.
      start_timestamp: Epoch seconds of the first possible event.
      zipf_exponent: Popularity weight of the item with popularity rank r is 1 / r**exponent.
      exploration: Share of events whose topic is uniformly random instead of preferred.
      cold_item_fraction: Share of catalog items that never receive an interaction.
      iso_timestamp_fraction: Share of rows whose timestamp is written as ISO-8601 text.
      malformed_fraction: Broken rows injected, as a share of the valid rows (0 disables).
      seed: Seed of the random generator; equal seeds give byte-identical output.
    """

    num_users: int = 2000
    num_items: int = 1000
    num_topics: int = 12
    max_topics_per_user: int = 3
    mean_events_per_user: float = 40.0
    min_events_per_user: int = 5
    weeks: int = 6
    start_timestamp: int = 1_700_000_000
    zipf_exponent: float = 0.9
    exploration: float = 0.05
    cold_item_fraction: float = 0.05
    iso_timestamp_fraction: float = 0.1
    malformed_fraction: float = 0.0
    seed: int = 42

    def __post_init__(self) -> None:
        positive = ("num_users", "num_items", "num_topics", "max_topics_per_user", "weeks")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)} must be at least 1")
        if self.num_items < 2 * self.num_topics:
            raise ValueError(
                f"num_items={self.num_items} is too few for num_topics={self.num_topics}; "
                "use at least two items per topic"
            )
        if self.mean_events_per_user < self.min_events_per_user:
            raise ValueError(
                f"mean_events_per_user={self.mean_events_per_user} is below "
                f"min_events_per_user={self.min_events_per_user}"
            )
        for name in ("exploration", "cold_item_fraction", "iso_timestamp_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name}={getattr(self, name)} must be in [0, 1)")
        if self.malformed_fraction < 0.0:
            raise ValueError(f"malformed_fraction={self.malformed_fraction} must be >= 0")


@dataclasses.dataclass(frozen=True)
class SyntheticData:
    """Generated rows and the planted truth.

    Attributes:
      interaction_lines: JSON Lines of the interaction log, malformed rows included.
      items: Catalog rows (dicts with item_id, title, description, categories).
      truth: Planted structure: topics, item_topics, user_topics, cold_items, malformed counts.
      users: Users table rows (user_id and the `USER_ATTRIBUTES`), one per user.
    """

    interaction_lines: list[str]
    items: list[dict[str, Any]]
    truth: dict[str, Any]
    users: list[dict[str, Any]] = dataclasses.field(default_factory=list)


#: Attribute columns of the generated users table.
USER_ATTRIBUTES = ("country", "age_band")
_COUNTRIES = ("DE", "FR", "US", "GB", "BR", "IN", "JP", "ES")
_AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+")


def _users_table(seed: int, user_topics: list[int]) -> list[dict[str, Any]]:
    """Users with a country and an age band, each weakly tied to the user's main topic.

    Uses its own random stream (seeded from `seed`), so adding the table changed no event.
    """
    rng = np.random.default_rng([seed, 1])
    users = []
    for index, topic in enumerate(user_topics):
        # Half the users take the country and age band their main topic leans to.
        leaning = rng.random() < 0.5
        country = _COUNTRIES[topic % len(_COUNTRIES)] if leaning else str(rng.choice(_COUNTRIES))
        age = _AGE_BANDS[topic % len(_AGE_BANDS)] if leaning else str(rng.choice(_AGE_BANDS))
        users.append({F.USER_ID: f"u{index:05d}", "country": country, "age_band": age})
    return users


def topic_names(num_topics: int) -> list[str]:
    """Readable topic names; topics past the 20 named ones are `topic-<i>`."""
    return [_TOPIC_NAMES[i] if i < len(_TOPIC_NAMES) else f"topic-{i}" for i in range(num_topics)]


def _topic_vocabularies(rng: np.random.Generator, num_topics: int) -> list[list[str]]:
    """Disjoint made-up vocabularies, `_WORDS_PER_TOPIC` words per topic."""
    seen: set[str] = set()
    vocabularies = []
    for _ in range(num_topics):
        words: list[str] = []
        while len(words) < _WORDS_PER_TOPIC:
            word = "".join(rng.choice(_SYLLABLES, size=int(rng.integers(2, 4))))
            if word not in seen:
                seen.add(word)
                words.append(word)
        vocabularies.append(words)
    return vocabularies


def _make_items(
    config: SyntheticConfig, rng: np.random.Generator, names: list[str]
) -> tuple[list[dict[str, Any]], list[list[int]]]:
    """Catalog rows and each item's topic indices (primary first)."""
    vocabularies = _topic_vocabularies(rng, config.num_topics)
    # Every topic gets at least two items, the rest are spread at random.
    primary = np.concatenate(
        [
            np.repeat(np.arange(config.num_topics), 2),
            rng.integers(0, config.num_topics, config.num_items - 2 * config.num_topics),
        ]
    )
    rng.shuffle(primary)
    items, item_topics = [], []
    for index, topic in enumerate(primary):
        topics = [int(topic)]
        if rng.random() < 0.25 and config.num_topics > 1:
            topics.append(int((topic + rng.integers(1, config.num_topics)) % config.num_topics))
        title_words = list(rng.choice(vocabularies[topics[0]], size=int(rng.integers(2, 4))))
        if rng.random() < 0.5:
            title_words.insert(0, str(rng.choice(_COMMON_WORDS)))
        description = [
            str(rng.choice(vocabularies[topics[int(rng.integers(0, len(topics)))]]))
            if rng.random() < 0.7
            else str(rng.choice(_COMMON_WORDS))
            for _ in range(int(rng.integers(12, 24)))
        ]
        items.append(
            {
                F.ITEM_ID: f"i{index:05d}",
                F.TITLE: " ".join(w.capitalize() for w in title_words),
                F.DESCRIPTION: " ".join(description),
                F.CATEGORIES: [names[t] for t in topics],
            }
        )
        item_topics.append(topics)
    return items, item_topics


def _popularity(
    config: SyntheticConfig, rng: np.random.Generator, item_topics: list[list[int]]
) -> tuple[np.ndarray, list[int]]:
    """Zipf weights over items (zero for cold items) and the sorted cold item indices.

    Every topic keeps at least one warm item, so every user preference can be served.
    """
    ranks = rng.permutation(config.num_items) + 1
    weights = 1.0 / ranks.astype(np.float64) ** config.zipf_exponent
    num_cold = int(round(config.cold_item_fraction * config.num_items))
    cold = set(int(i) for i in rng.choice(config.num_items, size=num_cold, replace=False))
    for topic in range(config.num_topics):
        members = [i for i, topics in enumerate(item_topics) if topic in topics]
        if all(i in cold for i in members):
            cold.discard(members[0])
    weights[sorted(cold)] = 0.0
    return weights, sorted(cold)


def _format_timestamp(rng: np.random.Generator, config: SyntheticConfig, ts: int) -> Any:
    if rng.random() < config.iso_timestamp_fraction:
        when = datetime.datetime.fromtimestamp(ts, tz=datetime.UTC)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return ts


def _user_rows(
    config: SyntheticConfig,
    rng: np.random.Generator,
    user_id: str,
    preferences: np.ndarray,
    topic_samplers: list[tuple[np.ndarray, np.ndarray]],
) -> list[dict[str, Any]]:
    """All interaction rows of one user.

    Args:
      preferences: `[num_topics]` probabilities of the user's topic choice.
      topic_samplers: Per topic, (item indices, their probabilities).
    """
    extra = rng.geometric(1.0 / (config.mean_events_per_user - config.min_events_per_user + 1))
    num_events = config.min_events_per_user + int(extra) - 1
    span = config.weeks * 7 * 86400
    rows = []
    for _ in range(num_events):
        if rng.random() < config.exploration:
            topic = int(rng.integers(0, config.num_topics))
        else:
            topic = int(rng.choice(config.num_topics, p=preferences))
        candidates, probs = topic_samplers[topic]
        item = int(rng.choice(candidates, p=probs))
        ts = config.start_timestamp + int(rng.integers(0, span))
        event = str(rng.choice(F.EVENT_TYPES, p=_EVENT_PROBS))
        row = {
            F.USER_ID: user_id,
            F.ITEM_ID: f"i{item:05d}",
            F.TIMESTAMP: ts,
            F.EVENT: event,
        }
        if event == "view":
            row[F.VALUE] = round(float(rng.gamma(2.0, 30.0)), 1)  # Dwell seconds.
        rows.append(row)
    return rows


def _malformed_line(rng: np.random.Generator, kind: str, valid: dict[str, Any]) -> str:
    """A broken version of `valid` of the given kind (see `_MALFORMED_KINDS`)."""
    row = dict(valid)
    if kind == "invalid_json":
        return json.dumps(row)[: -int(rng.integers(2, 8))]
    if kind == "missing_user_id":
        row.pop(F.USER_ID)
    elif kind == "empty_item_id":
        row[F.ITEM_ID] = ""
    elif kind == "bad_timestamp":
        row[F.TIMESTAMP] = "yesterday at noon"
    elif kind == "non_finite_value":
        row[F.VALUE] = float("nan")  # json.dumps writes NaN, which json.loads accepts.
    elif kind == "missing_event":
        row.pop(F.EVENT)
    elif kind == "unknown_item_id":
        row[F.ITEM_ID] = UNKNOWN_ITEM_ID
    return json.dumps(row)


def generate(config: SyntheticConfig, progress: bool = False) -> SyntheticData:
    """Generates the interaction log, the catalog and the planted truth for `config`."""
    rng = np.random.default_rng(config.seed)
    names = topic_names(config.num_topics)
    items, item_topics = _make_items(config, rng, names)
    weights, cold = _popularity(config, rng, item_topics)

    topic_samplers = []
    for topic in range(config.num_topics):
        members = np.array([i for i, ts in enumerate(item_topics) if topic in ts])
        topic_samplers.append((members, weights[members] / weights[members].sum()))

    rows: list[dict[str, Any]] = []
    user_topics: dict[str, dict[str, float]] = {}
    main_topics: list[int] = []
    for index in tqdm(range(config.num_users), desc="users", disable=not progress):
        user_id = f"u{index:05d}"
        count = int(rng.integers(1, config.max_topics_per_user + 1))
        chosen = rng.choice(config.num_topics, size=count, replace=False)
        chosen_weights = rng.dirichlet(np.ones(count) * 2.0)
        preferences = np.zeros(config.num_topics)
        preferences[chosen] = chosen_weights
        main_topics.append(int(chosen[int(np.argmax(chosen_weights))]))
        user_topics[user_id] = {
            names[int(t)]: round(float(w), 4) for t, w in zip(chosen, chosen_weights, strict=True)
        }
        rows.extend(_user_rows(config, rng, user_id, preferences, topic_samplers))
    rows.sort(key=lambda r: (r[F.TIMESTAMP], r[F.USER_ID], r[F.ITEM_ID]))

    lines = []
    for row in rows:
        row[F.TIMESTAMP] = _format_timestamp(rng, config, row[F.TIMESTAMP])
        lines.append(json.dumps(row))

    malformed = {kind: 0 for kind in _MALFORMED_KINDS}
    num_malformed = int(math.floor(config.malformed_fraction * len(rows)))
    if num_malformed:
        positions = np.sort(rng.choice(len(lines) + num_malformed, num_malformed, replace=False))
        for position in positions:
            kind = str(rng.choice(_MALFORMED_KINDS))
            malformed[kind] += 1
            lines.insert(int(position), _malformed_line(rng, kind, rows[int(position) % len(rows)]))

    truth = {
        "topics": names,
        "item_topics": {item[F.ITEM_ID]: item[F.CATEGORIES] for item in items},
        "user_topics": user_topics,
        "cold_items": [f"i{i:05d}" for i in cold],
        "valid_rows": len(rows),
        "malformed_rows": malformed,
    }
    return SyntheticData(
        interaction_lines=lines,
        items=items,
        truth=truth,
        users=_users_table(config.seed, main_topics),
    )


def _valid_event(line: str) -> tuple[int, str, str] | None:
    """(epoch seconds, user id, item id) of a generated log line; None for a malformed one."""
    try:
        row = json.loads(line)
        value = row[F.TIMESTAMP]
        if isinstance(value, str):
            when = datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
            value = when.replace(tzinfo=datetime.UTC).timestamp()
        user, item = row[F.USER_ID], row[F.ITEM_ID]
        if not (isinstance(user, str) and isinstance(item, str) and user and item):
            return None
        return int(value), user, item
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def before(data: SyntheticData, timestamp: int) -> SyntheticData:
    """The logs as they stood at `timestamp`: the log lines up to the first valid event at or
    after it (malformed lines in between stay, the log being in time order), the users with an
    event by then, and the catalog without the items first interacted with later (they are
    released later). Cold items stay. Feeding `before(data, t)` and then `data` to the pipeline
    is continuous training: new days bring new users and new items."""
    lines = []
    for line in data.interaction_lines:
        event = _valid_event(line)
        if event is not None and event[0] >= timestamp:
            break
        lines.append(line)
    first_seen: dict[str, int] = {}
    active: set[str] = set()
    for event in filter(None, map(_valid_event, data.interaction_lines)):
        when, user, item = event
        first_seen[item] = min(first_seen.get(item, when), when)
        if when < timestamp:
            active.add(user)
    items = [i for i in data.items if first_seen.get(i[F.ITEM_ID], -1) < timestamp]
    users = [u for u in data.users if u[F.USER_ID] in active]
    return dataclasses.replace(data, interaction_lines=lines, items=items, users=users)


def time_range(data: SyntheticData) -> tuple[int, int]:
    """(first, last) epoch seconds of the valid log lines."""
    times = [event[0] for event in filter(None, map(_valid_event, data.interaction_lines))]
    return min(times), max(times)


def write(data: SyntheticData, output_dir: str) -> dict[str, str]:
    """Writes the log, the catalog, the users table and the truth under `output_dir`; returns
    their paths keyed "interactions", "items", "users", "truth"."""
    os.makedirs(output_dir, exist_ok=True)
    paths = {
        "interactions": os.path.join(output_dir, F.RAW_INTERACTIONS_FILE),
        "items": os.path.join(output_dir, F.RAW_ITEMS_FILE),
        "users": os.path.join(output_dir, F.RAW_USERS_FILE),
        "truth": os.path.join(output_dir, F.RAW_TRUTH_FILE),
    }
    with open(paths["users"], "w", encoding="utf-8") as f:
        f.writelines(json.dumps(user) + "\n" for user in data.users)
    with open(paths["interactions"], "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in data.interaction_lines)
    with open(paths["items"], "w", encoding="utf-8") as f:
        f.writelines(json.dumps(item) + "\n" for item in data.items)
    with open(paths["truth"], "w", encoding="utf-8") as f:
        json.dump(data.truth, f, indent=1, sort_keys=True)
    return paths
