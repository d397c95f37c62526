"""generate -> ingest -> train -> export -> serve (separate process) -> query, on tiny data."""

import json
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from beam_jobs.config import IngestConfig
from beam_jobs.ingest import run_ingest
from pipeline.demo import free_port, start_server, stop_server
from recstack import features as F
from recstack import synthetic
from serving.client import ServingClient
from trainer.config import TrainConfig
from trainer.export import ExportConfig, export_models
from trainer.train import train

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TINY = synthetic.SyntheticConfig(
    num_users=400, num_items=200, num_topics=8, mean_events_per_user=30,
    malformed_fraction=0.02, seed=3,
)  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Runs every stage once and starts the server; yields paths, results and the target."""
    root = tmp_path_factory.mktemp("stack")
    data = synthetic.generate(TINY)
    paths = synthetic.write(data, str(root / "raw"))
    stats = run_ingest(
        IngestConfig(eval_days=7), paths["interactions"], paths["items"], str(root / "data")
    )
    result = train(TrainConfig(epochs=8, batch_size=256), str(root / "data"), str(root / "run"))
    versions = export_models(str(root / "run"), str(root / "models"), ExportConfig(k=50))
    version_dir = versions[F.MODEL_RETRIEVAL]
    port = free_port()
    server = start_server(str(root / "models"), port, str(root / "server.log"), None)
    try:
        with ServingClient(f"127.0.0.1:{port}", timeout_s=30) as client:
            client.wait_until_ready(timeout_s=120)
        yield {
            "raw": data, "stats": stats, "result": result, "version_dir": version_dir,
            "versions": versions, "target": f"127.0.0.1:{port}", "root": root,
        }  # fmt: skip
    finally:
        assert stop_server(server) == 0, (root / "server.log").read_text()


def test_rows_in_equal_rows_written_plus_dead_letters(stack):
    stats = stack["stats"]
    lines = stack["raw"].interaction_lines
    assert stats[F.STAT_ROWS_IN] == len(lines)
    assert stats[F.STAT_ROWS_IN] == stats[F.STAT_ROWS_WRITTEN] + stats[F.STAT_DEAD_LETTERS]
    assert stats[F.STAT_DEAD_LETTERS] == sum(stack["raw"].truth["malformed_rows"].values())
    dead = tf.io.gfile.glob(F.DataLayout(str(stack["root"] / "data")).dead_letter_pattern)
    letters = [json.loads(line) for path in dead for line in open(path)]
    interaction_letters = [d for d in letters if d["source"] == "interactions"]
    assert len(interaction_letters) == stats[F.STAT_DEAD_LETTERS]
    assert all(d["reason"] for d in interaction_letters)


def test_model_beats_popularity_at_recall_50(stack):
    metrics = stack["result"].metrics
    for name in ("recall@10", "recall@50", "ndcg@10", "mrr"):
        assert metrics["model"][name] > metrics["popularity"][name], name


def test_exported_version_carries_warmup_that_a_server_replays(stack):
    from serving.registry import ModelRegistry
    from serving.warmup import read_warmup_requests

    requests = read_warmup_requests(stack["version_dir"])
    batches = [len(r.inputs[F.INPUT_USER_ID].string_val) for r in requests]
    assert batches == [1, 8, 1]
    with open(os.path.join(stack["version_dir"], F.EXPORT_METADATA_FILE)) as f:
        assert json.load(f)["warmup_requests"] == 3
    loaded = ModelRegistry(str(stack["root"] / "models")).get(F.MODEL_RETRIEVAL)
    assert loaded.warmup_requests == 3


def test_grpc_answer_equals_in_process_savedmodel(stack):
    import scann  # noqa: F401

    users = ["u00000", "u00123", "u00399", "never-seen-user"]
    loaded = tf.saved_model.load(stack["version_dir"])
    local = loaded.signatures[F.SERVING_SIGNATURE](**{F.INPUT_USER_ID: tf.constant(users)})
    with ServingClient(stack["target"]) as client:
        remote = client.predict(F.MODEL_RETRIEVAL, {F.INPUT_USER_ID: np.array(users, object)})
        recs = client.recommend(users, k=10, model=F.MODEL_RETRIEVAL)
    np.testing.assert_array_equal(remote[F.OUTPUT_ITEM_IDS], local[F.OUTPUT_ITEM_IDS].numpy())
    np.testing.assert_allclose(remote[F.OUTPUT_SCORES], local[F.OUTPUT_SCORES].numpy(), rtol=1e-6)
    titles = {item[F.ITEM_ID]: item[F.TITLE] for item in stack["raw"].items}
    for row, user_recs in enumerate(recs):
        assert len(user_recs) == 10
        expected_ids = [v.decode() for v in local[F.OUTPUT_ITEM_IDS].numpy()[row, :10]]
        assert [r.item_id for r in user_recs] == expected_ids
        assert all(r.title == titles[r.item_id] for r in user_recs)


def _official_predict(target, model, inputs):
    """One Predict over the official tensorflow_serving stubs; outputs as numpy arrays."""
    channel = grpc.insecure_channel(target)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = F.SERVING_SIGNATURE
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    try:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
            request, timeout=30
        )
    finally:
        channel.close()
    assert response.model_spec.name == model and response.model_spec.version.value == 1
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def _in_process(stack, model, inputs):
    import scann  # noqa: F401

    signature = tf.saved_model.load(stack["versions"][model]).signatures[F.SERVING_SIGNATURE]
    return {
        k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in inputs.items()}).items()
    }


def test_every_model_answers_the_official_stubs_as_in_process(stack):
    users = np.array(["u00000", "u00123", "never-seen-user"], dtype=object)
    items = [item[F.ITEM_ID] for item in stack["raw"].items]
    requests = {
        F.MODEL_RETRIEVAL: {F.INPUT_USER_ID: users},
        F.MODEL_RANKING: {F.INPUT_USER_ID: users,
                          F.INPUT_ITEM_IDS: np.array([items[:5]] * 3, dtype=object)},
        F.MODEL_RECOMMENDER: {
            F.INPUT_USER_ID: users, F.INPUT_K: np.array([5, 10, 3], np.int32),
            F.INPUT_MMR_LAMBDA: np.array([0.0, 0.5, 1.0], np.float32),
            F.INPUT_EXCLUDE_ITEM_IDS: np.array([items[:2], ["", ""], [items[3], ""]], dtype=object),
        },
    }  # fmt: skip
    for model, inputs in requests.items():
        remote = _official_predict(stack["target"], model, inputs)
        local = _in_process(stack, model, inputs)
        assert sorted(remote) == sorted(local), model
        for name in local:
            if local[name].dtype == object:
                np.testing.assert_array_equal(remote[name], local[name], err_msg=model)
            else:
                np.testing.assert_allclose(remote[name], local[name], rtol=1e-5, err_msg=model)
    recommended = _official_predict(stack["target"], F.MODEL_RECOMMENDER,
                                    requests[F.MODEL_RECOMMENDER])[F.OUTPUT_ITEM_IDS]  # fmt: skip
    assert recommended.shape == (3, 10)
    assert not {items[0].encode(), items[1].encode()} & set(recommended[0])
    assert all(v for v in recommended[1]) and list(recommended[2][3:]) == [b""] * 7


def test_recommender_k_out_of_range_is_invalid_argument_naming_k(stack):
    with pytest.raises(grpc.RpcError) as error:
        _official_predict(stack["target"], F.MODEL_RECOMMENDER, {
            F.INPUT_USER_ID: np.array(["u00000"], dtype=object),
            F.INPUT_K: np.array([51], np.int32), F.INPUT_MMR_LAMBDA: np.array([0.0], np.float32),
            F.INPUT_EXCLUDE_ITEM_IDS: np.zeros([1, 0], dtype=object),
        })  # fmt: skip
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "input k must be between 1 and 50" in error.value.details()


def test_cli_query_ranks_and_diversifies(stack, capsys):
    from recstack.cli import main

    items = [item[F.ITEM_ID] for item in stack["raw"].items[:4]]
    main(["query", "--target", stack["target"], "--model", "ranking", "--user-id", "u00007",
          *[arg for item in items for arg in ("--item-id", item)]])  # fmt: skip
    lines = [
        line.split() for line in capsys.readouterr().out.splitlines() if line.strip()[:1].isdigit()
    ]
    assert sorted(line[1] for line in lines) == sorted(items)
    scores = [float(line[2]) for line in lines]
    assert scores == sorted(scores, reverse=True)

    main(["query", "--target", stack["target"], "--user-id", "u00007", "--k", "4",
          "--mmr-lambda", "0.5", "--exclude", items[0]])  # fmt: skip
    lines = [
        line.split() for line in capsys.readouterr().out.splitlines() if line.strip()[:1].isdigit()
    ]
    assert len(lines) == 4 and items[0] not in {line[1] for line in lines}


def test_unknown_model_is_not_found_and_server_keeps_serving(stack):
    channel = grpc.insecure_channel(stack["target"])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "no-such-model"
    request.inputs[F.INPUT_USER_ID].CopyFrom(tf.make_tensor_proto(["u00000"]))
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND

    bad = predict_pb2.PredictRequest()
    bad.model_spec.name = F.MODEL_RETRIEVAL
    bad.inputs[F.INPUT_USER_ID].CopyFrom(tf.make_tensor_proto([1.5], dtype=tf.float32))
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(bad, timeout=10)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert F.INPUT_USER_ID in error.value.details()

    request.model_spec.name = F.MODEL_RETRIEVAL
    response = stub.Predict(request, timeout=10)
    assert response.model_spec.version.value == 1
    assert len(tf.make_ndarray(response.outputs[F.OUTPUT_ITEM_IDS])[0]) == 50
    channel.close()


def test_cli_query_prints_titles(stack, capsys):
    from recstack.cli import main

    main(["query", "--target", stack["target"], "--user-id", "u00007", "--k", "3"])
    out = capsys.readouterr().out
    titles = {item[F.TITLE] for item in stack["raw"].items}
    lines = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(lines) == 3
    assert all(any(t in line for t in titles) for line in lines)


def test_tensorboard_event_files_hold_the_expected_tags(stack):
    from trainer.tensorboard import read_tags

    board = os.path.join(stack["result"].run_dir, "tensorboard")
    tags = read_tags(board)
    assert {"epoch_loss", "learning_rate", "examples_per_second", "losses/retrieval_loss",
            "embeddings/item_id", "embeddings/user_id"} <= tags["train"]  # fmt: skip
    assert {"epoch_retrieval_loss"} <= tags["validation"]
    assert {"recall@10", "recall@50", "ndcg@10", "mrr", "popularity_recall@50"} <= tags["eval"]
    assert {"_hparams_/experiment", "_hparams_/session_start_info", "eval/recall@10"} <= tags["."]
    projector = os.path.join(board, "projector")
    with open(os.path.join(projector, "metadata.tsv"), encoding="utf-8") as f:
        rows = f.read().splitlines()
    assert rows[0] == "item_id\ttitle" and len(rows) == 1 + len(stack["raw"].items)
    assert os.path.exists(os.path.join(projector, "projector_config.pbtxt"))


def test_cli_query_unknown_model_exits_with_the_grpc_status(stack):
    from recstack.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["query", "--target", stack["target"], "--model", "nope", "--user-id", "u1"])
    assert "NOT_FOUND" in str(exit_info.value.code)
