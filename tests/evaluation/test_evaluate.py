"""`recstack evaluate` end to end on tiny data: a training run, an exported recommender in
process, and the same recommender behind a running server (which must agree exactly)."""

import json
import os

import numpy as np
import pytest

from evaluation.config import EvaluateConfig
from evaluation.evaluate import Model, run_evaluation
from evaluation.sources import (
    LeakError,
    check_history_splits,
    lists_from_recommender,
    newest_version,
    saved_model_call,
    server_call,
)
from recstack import features as F
from recstack.cli import main
from trainer import evaluation as protocol

pytestmark = pytest.mark.slow

CONFIG = EvaluateConfig(ks=(5, 10), baselines=("popularity",), pool_size=20,
                        lambdas=(0.0, 0.5, 1.0), rerank_variants=())  # fmt: skip


@pytest.fixture(scope="module")
def exported(data_dir, tmp_path_factory):
    """A 2-epoch run without time context, exported twice: without the eval split in its user
    tables (for evaluation) and with every split (the serving default)."""
    from trainer.config import QueryConfig, TensorBoardConfig, TextConfig, TrainConfig
    from trainer.export import ExportConfig, export_models
    from trainer.train import train

    root = tmp_path_factory.mktemp("evaluate")
    run = str(root / "run")
    config = TrainConfig(
        epochs=2, batch_size=128, query=QueryConfig(use_context=False),
        text=TextConfig(mode="none"),
        tensorboard=TensorBoardConfig(projector_items=0, histograms=False),
    )  # fmt: skip
    train(config, data_dir, run, verbose=0)
    export = ExportConfig(models=(F.MODEL_RECOMMENDER,), k=10, num_candidates=20,
                          index="brute_force", history_splits=("train",))  # fmt: skip
    clean = export_models(run, str(root / "clean"), export)[F.MODEL_RECOMMENDER]
    leaky = export_models(run, str(root / "leaky"),
                          ExportConfig(models=(F.MODEL_RECOMMENDER,), k=10, num_candidates=20,
                                       index="brute_force"))[F.MODEL_RECOMMENDER]  # fmt: skip
    return {"run": run, "clean": clean, "leaky": leaky, "root": root}


def test_run_metrics_match_the_trainers_protocol(data_dir, exported):
    report = run_evaluation(data_dir, CONFIG, run_dir=exported["run"], progress=False)
    # The trainer's own metric code (trainer.retrieval_metrics) on the same scorer.
    from trainer.train import restore_model

    model, config, _ = restore_model(exported["run"])
    layout = F.DataLayout(data_dir)
    eval_set = protocol.build_eval_set(layout, config.query.history_length, model.catalog.ids)
    scorer = protocol.embedding_scorer(model.embed_queries(eval_set.queries),
                                       model.embed_items(eval_set.corpus_ids))  # fmt: skip
    expected = protocol.evaluate(scorer, eval_set, [5, 10])
    for name in ("recall@5", "recall@10", "ndcg@10", "mrr"):
        assert report.metrics["model"][name] == pytest.approx(expected[name], abs=1e-9), name
    popularity = protocol.evaluate(protocol.popularity_scorer(eval_set), eval_set, [10])
    assert report.metrics["popularity"]["recall@10"] == pytest.approx(popularity["recall@10"])
    assert report.meta["users"] == len(eval_set.users)
    assert [p["lambda"] for p in report.lambda_curve] == [0.0, 0.5, 1.0]
    assert report.chosen_lambda in (0.0, 0.5, 1.0)
    assert set(report.segments["model"]) >= {"items_head", "items_tail"}
    # The user segments partition the users: their recall, weighted by their users, is the
    # overall recall.
    counts = report.meta["segment_users"]
    user_segments = [s for s in ("new", "light", "heavy") if s in counts]
    assert sum(counts[s] for s in user_segments) == report.meta["users_evaluated"]
    weighted = sum(report.segments["model"][s]["recall@10"] * counts[s] for s in user_segments)
    assert weighted / report.meta["users_evaluated"] == pytest.approx(
        report.metrics["model"]["recall@10"]
    )


def test_server_answers_equal_the_in_process_model(data_dir, exported):
    from pipeline.demo import free_port, start_server, stop_server
    from serving.client import ServingClient

    eval_set = protocol.build_eval_set(F.DataLayout(data_dir), 20)
    version = newest_version(os.path.dirname(exported["clean"]))
    local_top, local_scores = lists_from_recommender(saved_model_call(version), eval_set, 10)
    base = os.path.dirname(os.path.dirname(exported["clean"]))
    port = free_port()
    server = start_server(base, port, str(exported["root"] / "server.log"), None)
    try:
        with ServingClient(f"127.0.0.1:{port}", timeout_s=30) as client:
            client.wait_until_ready(timeout_s=120, model=F.MODEL_RECOMMENDER)
            call = server_call(client)
            remote_top, remote_scores = lists_from_recommender(call, eval_set, 10)
            served = run_evaluation(data_dir, CONFIG, model=Model(call=call), progress=False)
    finally:
        assert stop_server(server) == 0
    np.testing.assert_array_equal(remote_top, local_top)
    np.testing.assert_allclose(remote_scores, local_scores, rtol=1e-6)
    in_process = run_evaluation(data_dir, CONFIG, model=Model(call=saved_model_call(version)),
                                progress=False)  # fmt: skip
    assert served.metrics == in_process.metrics
    assert served.lambda_curve == in_process.lambda_curve


def test_an_export_holding_the_eval_split_is_refused(exported):
    check_history_splits(exported["clean"], "eval")  # train only: fine
    with pytest.raises(LeakError, match="history_splits=.*eval"):
        check_history_splits(exported["leaky"], "eval")


def test_cli_writes_json_html_and_tensorboard(data_dir, exported, tmp_path, capsys):
    out = str(tmp_path / "report")
    main(["evaluate", "--data", data_dir, "--run-dir", exported["run"], "--output", out,
          "--set", "ks=[5,10]", "--set", "baselines=[popularity,itemknn]",
          "--set", "pool_size=20", "--set", "lambdas=[0.0,0.5]"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "recall@10" in printed and "itemknn" in printed and "MMR lambda chosen" in printed
    report = json.load(open(os.path.join(out, "report.json")))
    assert set(report["metrics"]) == {"model", "popularity", "itemknn", "model+mmr",
                                      "model+calibrated", "model+novelty"}  # fmt: skip
    # MMR at lambda 0 keeps the model's order: the sweep's first point is the model itself.
    first = report["lambda_curve"][0]
    assert first["lambda"] == 0.0
    assert first["ndcg@10"] == pytest.approx(report["metrics"]["model"]["ndcg@10"])
    html = open(os.path.join(out, "report.html")).read()
    assert "<img" in html and "data:image/png;base64," in html
    assert os.listdir(os.path.join(out, "tensorboard"))
