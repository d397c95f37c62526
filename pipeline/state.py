"""The pipeline's memory between runs: which models were blessed and pushed.

TFX keeps this in ML Metadata and reads it with its LatestBlessedModel resolver; here it is one
JSON file, `<root>/state/blessed_models.json`, appended to by the Pusher and read by the
Resolver at the start of every run (so scheduled runs on Vertex AI resolve at run time too).

Each record says what a pushed model was made of: its Trainer artifact (`model_uri`, with the
training run and the exported SavedModels), the examples and statistics it was trained on,
the serving version it became, and the inputs it was produced from (`inputs_key`, and the
`base_model_uri` it warm-started from and the `baseline_model_uri` it was compared with).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from typing import Any

from recstack import fs

STATE_FILE = "blessed_models.json"


@dataclasses.dataclass(frozen=True)
class Resolved:
    """What the Resolver hands to a run ("" for none).

    Attributes:
      base_model_uri: Trainer artifact to warm-start from.
      baseline_model_uri: Trainer artifact of the blessed model the candidate is compared with.
      baseline_statistics_uri: Statistics the blessed model was trained on (drift baseline).
      baseline_examples_uri: Examples the blessed model was trained on (new-id baseline).
    """

    base_model_uri: str = ""
    baseline_model_uri: str = ""
    baseline_statistics_uri: str = ""
    baseline_examples_uri: str = ""


def inputs_key(static_key: str, data_fingerprint: str) -> str:
    """Identity of a run's inputs: the config and code (`static_key`) and the data."""
    return hashlib.sha256(f"{static_key}:{data_fingerprint}".encode()).hexdigest()


def read_records(state_dir: str) -> list[dict[str, Any]]:
    """The pushed models, oldest first ([] before the first push)."""
    path = os.path.join(state_dir, STATE_FILE)
    if not fs.exists(path):
        return []
    return fs.read_json(path)["models"]


def append_record(state_dir: str, record: dict[str, Any]) -> None:
    """Adds a pushed model (atomically rewriting the state file)."""
    records = [*read_records(state_dir), {**record, "pushed_at": time.time()}]
    fs.write_json(os.path.join(state_dir, STATE_FILE), {"models": records})


def resolve(state_dir: str, key: str, warm_start: bool) -> Resolved:
    """The latest blessed model as warm-start base and comparison baseline.

    When the latest blessed model was produced from exactly these inputs (`key`: same data,
    config and code), the run is a repeat: it gets the same base and baseline that run had,
    so its steps find their cached results instead of training again on the same data.
    """
    records = read_records(state_dir)
    if not records:
        return Resolved()
    latest = records[-1]
    if latest.get("inputs_key") == key:
        return Resolved(
            base_model_uri=latest.get("base_model_uri", ""),
            baseline_model_uri=latest.get("baseline_model_uri", ""),
            baseline_statistics_uri=latest.get("baseline_statistics_uri", ""),
            baseline_examples_uri=latest.get("baseline_examples_uri", ""),
        )
    return Resolved(
        base_model_uri=latest["model_uri"] if warm_start else "",
        baseline_model_uri=latest["model_uri"],
        baseline_statistics_uri=latest["statistics_uri"],
        baseline_examples_uri=latest["examples_uri"],
    )


def pushed_version(state_dir: str, model_uri: str) -> int | None:
    """The serving version `model_uri` was pushed as, None if it never was."""
    for record in reversed(read_records(state_dir)):
        if record["model_uri"] == model_uri:
            return int(record["version"])
    return None
