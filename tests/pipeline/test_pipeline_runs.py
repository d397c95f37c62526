"""The local pipeline end to end on tiny data, as a sequence of runs over one pipeline root:

1. first logs -> every stage runs, version 1 is pushed;
2. the same again -> the expensive stages come from the cache, nothing new is pushed;
3. one more stretch of logs -> warm start, grown vocabularies, version 2, served;
4. logs with a severe anomaly -> stopped at ExampleValidator, nothing pushed;
5. a deliberately bad model -> not blessed, nothing pushed.

The tests run in file order and share the root (each builds on the state the previous left).
"""

import json
import os

import pytest
import yaml

from pipeline.config import load_pipeline_settings
from pipeline.local_runner import PipelineFailedError, run_local
from pipeline.pusher import LINEAGE_FILE
from recstack import features as F
from recstack import synthetic

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TINY = synthetic.SyntheticConfig(
    num_users=150, num_items=80, num_topics=4, mean_events_per_user=20, seed=5
)
CONFIG = {
    "ingest": {"eval_days": 7, "user_attributes": ["country", "age_band"]},
    "train": {
        "embedding_dim": 16, "batch_size": 128, "epochs": 3, "learning_rate": 0.01,
        "text": {"mode": "none"}, "query": {"use_context": False},
        "tensorboard": {"histograms": False, "projector_items": 0},
    },
    "export": {"k": 50, "num_candidates": 50, "index": "brute_force"},
    "evaluator": {"ks": [5, 10], "metric": "recall@10", "max_relative_drop": 0.0},
}  # fmt: skip
STAGES = ("ExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator", "Trainer",
          "Evaluator", "Pusher")  # fmt: skip


@pytest.fixture(scope="module")
def space(tmp_path_factory):
    """Raw logs (the first 40% of the period, and all of it), a config file, the roots."""
    root = tmp_path_factory.mktemp("pipeline")
    data = synthetic.generate(TINY)
    first, last = synthetic.time_range(data)
    early = synthetic.before(data, int(first + 0.4 * (last - first)))
    raw = root / "raw"
    config = {
        **CONFIG,
        "pipeline": {
            "name": "tiny", "root": str(root / "root"),
            "interactions": str(raw / F.RAW_INTERACTIONS_FILE),
            "items": str(raw / F.RAW_ITEMS_FILE), "users": str(raw / F.RAW_USERS_FILE),
            "serving_model_dir": str(root / "models"),
            "beam_args": ["--direct_running_mode=in_memory"],
        },
    }  # fmt: skip
    (root / "config.yaml").write_text(yaml.safe_dump(config))
    return {"root": root, "raw": str(raw), "early": early, "full": data, "runs": {},
            "config": str(root / "config.yaml"), "models": str(root / "models")}  # fmt: skip


def _run(space, *assignments):
    return run_local(load_pipeline_settings(space["config"], list(assignments)))


def _versions(models: str, name: str) -> list[int]:
    path = os.path.join(models, name)
    return sorted(int(v) for v in os.listdir(path) if v.isdigit()) if os.path.isdir(path) else []


def _vocab(examples: str, which: str) -> set[str]:
    path = getattr(F.DataLayout(examples), which)
    return {F.parse_vocabulary_line(line)[0] for line in open(path, encoding="utf-8")}


def test_first_run_pushes_version_1_with_lineage(space):
    synthetic.write(space["early"], space["raw"])
    result = _run(space)
    space["runs"]["first"] = result
    manifest = result.manifest
    assert manifest["status"] == "succeeded"
    assert all(manifest["stages"][s]["ran"] for s in STAGES)
    assert result.cached == []
    assert result.pushed_version == 1
    for name in F.SERVED_MODELS:
        assert _versions(space["models"], name) == [1]
    lineage = json.load(open(os.path.join(space["models"], F.MODEL_RECOMMENDER, "1", LINEAGE_FILE)))
    assert lineage["run_id"] == result.run_id
    assert lineage["data_fingerprint"] == manifest["data"]["fingerprint"]
    assert lineage["code_version"] == manifest["code_version"]
    assert lineage["model_uri"] == manifest["stages"]["Trainer"]["artifacts"]["model"]
    listed = {f["path"] for f in manifest["data"]["files"]}
    assert os.path.join(space["raw"], F.RAW_INTERACTIONS_FILE) in listed
    # SchemaGen stored the inferred schema for the next runs.
    assert os.path.exists(os.path.join(space["root"], "root", "state", "schema.json"))
    assert set(manifest["tensorboard"]) == {"statistics", "training", "evaluation"}
    assert manifest["evaluation"]["blessed"] is True
    assert manifest["evaluation"]["blessed_model"] is None
    # Beyond accuracy beside it: popularity's lists are, user by user, the most popular items
    # a list can hold, so no model's mean popularity exceeds them.
    evaluation = manifest["evaluation"]
    assert 0 < evaluation["candidate"]["coverage"] <= 1
    popular = evaluation["popularity"]["mean_popularity"]
    assert evaluation["candidate"]["mean_popularity"] <= popular


def test_rerun_with_nothing_changed_uses_the_cache_and_pushes_nothing(space):
    result = _run(space)
    assert set(result.cached) == {"ExampleGen", "StatisticsGen", "Trainer", "Evaluator"}
    first = space["runs"]["first"].manifest["stages"]
    for stage in ("ExampleGen", "Trainer"):
        assert result.manifest["stages"][stage]["artifacts"] == first[stage]["artifacts"]
    assert result.pushed_version is None
    assert result.manifest["pushed"]["already_pushed"] is True
    assert _versions(space["models"], F.MODEL_RECOMMENDER) == [1]


def test_new_logs_warm_start_grow_vocabularies_and_push_version_2(space):
    from pipeline.demo import free_port, start_server, stop_server
    from serving.client import ServingClient

    synthetic.write(space["full"], space["raw"])
    result = _run(space)
    space["runs"]["second"] = result
    assert result.cached == []
    assert result.pushed_version == 2
    old = space["runs"]["first"].manifest["stages"]["ExampleGen"]["artifacts"]["examples"]
    new = result.manifest["stages"]["ExampleGen"]["artifacts"]["examples"]
    for which in ("user_vocab", "item_vocab"):
        assert _vocab(old, which) < _vocab(new, which), which
    model = result.manifest["stages"]["Trainer"]["artifacts"]["model"]
    warm = json.load(open(os.path.join(model, "run", "warm_start.json")))
    first_model = space["runs"]["first"].manifest["stages"]["Trainer"]["artifacts"]["model"]
    assert warm["base_checkpoint"].startswith(os.path.join(first_model, "run"))
    grown_users = _vocab(new, "user_vocab") - _vocab(old, "user_vocab")
    assert warm["tables"]["user_id"]["kept"] == len(_vocab(old, "user_vocab"))
    assert warm["tables"]["user_id"]["new"] == len(grown_users)
    evaluation = result.manifest["evaluation"]
    assert evaluation["baseline_model_uri"] == first_model
    assert evaluation["blessed_model"] is not None
    # The server answers from version 2, whose index covers the new catalog.
    port = free_port()
    server = start_server(space["models"], port, str(space["root"] / "server.log"), None)
    try:
        with ServingClient(f"127.0.0.1:{port}", timeout_s=30) as client:
            client.wait_until_ready(timeout_s=120)
            assert client.status(F.MODEL_RETRIEVAL) == {2: "AVAILABLE"}
            user = sorted(grown_users)[0]
            recs = client.recommend([user], 50, model=F.MODEL_RETRIEVAL)[0]
            new_items = _vocab(new, "item_vocab") - _vocab(old, "item_vocab")
            catalog = {item[F.ITEM_ID] for item in space["full"].items}
            assert new_items and new_items <= catalog
            assert len(recs) == 50
            indexed = {rec.item_id for rec in recs}
            assert indexed <= catalog
    finally:
        assert stop_server(server) == 0


def test_severe_anomaly_stops_at_example_validator_and_pushes_nothing(space):
    anomalous = []
    for line in space["full"].interaction_lines:
        row = json.loads(line)
        row[F.EVENT] = "purchase"  # Every event a purchase: the event mix drifts far.
        anomalous.append(json.dumps(row))
    with open(os.path.join(space["raw"], F.RAW_INTERACTIONS_FILE), "w") as f:
        f.writelines(line + "\n" for line in anomalous)
    with pytest.raises(PipelineFailedError, match="ExampleValidator") as failure:
        _run(space)
    assert "event" in str(failure.value)
    assert _versions(space["models"], F.MODEL_RECOMMENDER) == [1, 2]
    runs = sorted(os.listdir(os.path.join(space["root"], "root", "runs")))
    manifest = json.load(open(os.path.join(space["root"], "root", "runs", runs[-1],
                                           "manifest.json")))  # fmt: skip
    assert manifest["status"] == "failed"
    assert not manifest["stages"]["Trainer"]["ran"]
    assert manifest["pushed"] is None
    synthetic.write(space["full"], space["raw"])  # Restore the good logs.


def test_a_model_worse_than_the_blessed_one_is_not_pushed(space):
    result = _run(space, "pipeline.warm_start=false", "train.epochs=1",
                  "train.learning_rate=0.00001")  # fmt: skip
    evaluation = result.manifest["evaluation"]
    assert evaluation["blessed"] is False
    metric = evaluation["metric"]
    assert evaluation["candidate"][metric] < evaluation["blessed_model"][metric]
    assert any(r.startswith("FAIL") for r in evaluation["reasons"])
    assert result.manifest["pushed"] is None
    assert not result.manifest["stages"]["Pusher"]["ran"]
    assert _versions(space["models"], F.MODEL_RECOMMENDER) == [1, 2]
