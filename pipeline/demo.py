"""`make demo`: every stage end to end on generated data, then live gRPC queries.

generate -> the pipeline, run locally with kfp (ExampleGen: the Beam ingest; StatisticsGen;
SchemaGen; ExampleValidator; Trainer: TFRS training and the export of the retrieval, ranking
and recommender SavedModels sharing a ScaNN index; Evaluator; Pusher) -> serve the pushed
models (a separate server process speaking the TF Serving API) -> ask the recommender for
three users over gRPC, once more with MMR diversity, and once over REST -> print the
recommendations, the eval metrics of the model next to the popularity baseline, and how to
open TensorBoard over the run -> stop the server with SIGTERM.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter

from pipeline.evaluator import BEYOND_METRICS
from recstack import features as F
from recstack.config import DEFAULT_CONFIG, load_section


def free_port() -> int:
    """A TCP port that was free a moment ago (for the demo's server)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pick_users(user_vocab: str) -> list[str]:
    """A heavy, a median and a light user from the training vocabulary."""
    with open(user_vocab, encoding="utf-8") as f:
        users = [F.parse_vocabulary_line(line)[0] for line in f]
    return [users[0], users[len(users) // 2], users[-1]]


def start_server(base_path: str, port: int, log_path: str, config: str | None, rest_port: int = 0):
    """Starts `recstack serve` as a child process (gRPC on `port`, REST on `rest_port` unless
    0); returns the Popen."""
    command = [sys.executable, "-m", "recstack.cli"]
    if config:
        command += ["--config", config]
    command += ["serve", "--model-base-path", base_path, "--port", str(port), "--host", "127.0.0.1"]
    if rest_port:
        command += ["--rest_api_port", str(rest_port)]
    log = open(log_path, "w", encoding="utf-8")  # noqa: SIM115  (owned by the child's lifetime)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def stop_server(process: subprocess.Popen, timeout_s: float = 30.0) -> int:
    """SIGTERM (graceful drain), then wait; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _print_recommendations(client, users, raw_dir, categories_of, k=10, mmr_lambda=0.3) -> list:
    """Each user's top k from the `recommender` model, then the first user's list re-ranked
    for diversity with `mmr_lambda`; returns the first answers."""
    truth_path = os.path.join(raw_dir, F.RAW_TRUTH_FILE)
    truth = json.load(open(truth_path, encoding="utf-8")) if os.path.exists(truth_path) else {}

    def show(recs: list, heading: str) -> None:
        shown = Counter(c for rec in recs for c in categories_of.get(rec.item_id, []))
        print(heading)
        print(f"  categories of the top {k}: {dict(shown.most_common(4))} "
              f"({len(shown)} distinct)")  # fmt: skip
        for rank, rec in enumerate(recs, start=1):
            cats = "|".join(categories_of.get(rec.item_id, []))
            print(f"  {rank:2d}. {rec.item_id}  {rec.score:7.3f}  {rec.title:<40} [{cats}]")

    answers = client.recommend(users, k)
    for user, recs in zip(users, answers, strict=True):
        planted = truth.get("user_topics", {}).get(user, {})
        show(recs, f"\nuser {user}  planted topics: {planted}")
    diverse = client.recommend(users[:1], k, mmr_lambda=mmr_lambda)[0]
    show(diverse, f"\nuser {users[0]} again, re-ranked for diversity (mmr_lambda={mmr_lambda})")
    return answers


def _ask_rest(rest_port: int, user: str, grpc_recs: list, k: int = 5) -> None:
    """The same recommender request over TF Serving's REST API, printed with its curl."""
    body = {"instances": [{F.INPUT_USER_ID: user, F.INPUT_K: k, F.INPUT_MMR_LAMBDA: 0.0,
                           F.INPUT_EXCLUDE_ITEM_IDS: [""]}]}  # fmt: skip
    url = f"http://127.0.0.1:{rest_port}/v1/models/{F.MODEL_RECOMMENDER}:predict"
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        rest_ids = json.load(answer)["predictions"][0][F.OUTPUT_ITEM_IDS][:k]
    print(f"\nREST: curl -d '{json.dumps(body)}' {url}")
    same = rest_ids == [rec.item_id for rec in grpc_recs[:k]]
    print(f"  -> {rest_ids}  (same as gRPC: {same})")


@dataclasses.dataclass
class DemoReport:
    """What one demo run produced.

    Attributes:
      metrics: `{"model": {name: value}, "popularity": {name: value}}` on the eval split
        (the Evaluator's, `trainer.evaluation.metric_names`).
      stats: The ingest job's stats.json.
      seconds: Wall-clock seconds per stage, in order (generate, pipeline, serve).
      run: The pipeline run (`pipeline.local_runner.RunResult`).
      beyond: `{"model": ..., "popularity": ...}` of `pipeline.evaluator.BEYOND_METRICS`
        (coverage, exposure Gini, novelty, mean popularity of the top 10).
    """

    metrics: dict[str, dict[str, float]]
    stats: dict
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)
    run: object = None
    beyond: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, step: int, name: str, text: str):
        """Prints the stage banner and records the stage's wall-clock time under `name`."""
        print(f"\n=== [{step}/4] {text}", flush=True)
        started = time.perf_counter()
        yield
        self.seconds[name] = time.perf_counter() - started


def run_pipeline(config: str, workdir: str, raw: dict[str, str]):
    """Runs the pipeline of `config` locally with its inputs and outputs under `workdir`;
    returns the `RunResult`."""
    from pipeline.config import load_pipeline_settings
    from pipeline.local_runner import run_local
    from pipeline.report import format_run

    settings = load_pipeline_settings(config, [
        f"pipeline.root={os.path.join(workdir, 'pipeline')}",
        f"pipeline.interactions={raw['interactions']}",
        f"pipeline.items={raw['items']}",
        f"pipeline.users={raw['users']}",
        f"pipeline.serving_model_dir={os.path.join(workdir, 'models')}",
    ])  # fmt: skip
    result = run_local(settings)
    print(format_run(result))
    return result


def run_demo(workdir: str, config: str | None = None) -> DemoReport:
    """Runs the whole stack once under `workdir` (emptied first) and prints what it did."""
    from recstack import synthetic
    from serving.client import ServingClient

    config = config or DEFAULT_CONFIG
    raw, models = os.path.join(workdir, "raw"), os.path.join(workdir, "models")
    if os.path.isdir(workdir):  # The demo's own scratch space: start from nothing every time.
        shutil.rmtree(workdir)
    report = DemoReport(metrics={}, stats={})

    with report.stage(1, "generate", "generate synthetic logs and catalog"):
        generated = synthetic.generate(
            load_section(config, "generate", synthetic.SyntheticConfig), progress=True
        )
        paths = synthetic.write(generated, raw)
    with report.stage(2, "pipeline", "the pipeline (kfp, local runner): ExampleGen (Beam) -> "
                      "StatisticsGen -> SchemaGen -> ExampleValidator -> Trainer (TFRS, ScaNN "
                      "export) -> Evaluator -> Pusher"):  # fmt: skip
        report.run = run = run_pipeline(config, workdir, paths)
        examples = run.manifest["stages"]["ExampleGen"]["artifacts"]["examples"]
        report.stats = json.load(open(F.DataLayout(examples).stats, encoding="utf-8"))
        evaluation = run.evaluation
        for key, system in (("model", "candidate"), ("popularity", "popularity")):
            values = evaluation[system]
            report.metrics[key] = {n: v for n, v in values.items() if n not in BEYOND_METRICS}
            report.beyond[key] = {n: values[n] for n in BEYOND_METRICS}
    server_log = os.path.join(workdir, "server.log")
    with report.stage(3, "serve", "serve the pushed models over gRPC (TensorFlow Serving API), "
                      "ask the recommender"):  # fmt: skip
        port, rest_port = free_port(), free_port()
        while rest_port == port:
            rest_port = free_port()
        server = start_server(models, port, server_log, config, rest_port)
        try:
            with ServingClient(f"127.0.0.1:{port}", timeout_s=30.0) as client:
                client.wait_until_ready(timeout_s=120.0)
                categories_of = {i[F.ITEM_ID]: i[F.CATEGORIES] for i in generated.items}
                users = _pick_users(F.DataLayout(examples).user_vocab)
                answers = _print_recommendations(client, users, raw, categories_of)
            _ask_rest(rest_port, users[0], answers[0])
        finally:
            code = stop_server(server)
        print(f"\nserver stopped (exit code {code}); its log: {server_log}")

    print("\n=== [4/4] metrics on the eval split (full catalog, training items excluded)")
    beyond, popular = report.beyond["model"], report.beyond["popularity"]
    for name, model in report.metrics["model"].items():
        baseline = report.metrics["popularity"][name]
        print(f"  {name:<10} model {model:.4f}   popularity baseline {baseline:.4f}   "
              f"lift x{model / baseline if baseline else float('inf'):.2f}")  # fmt: skip
    print(
        "  beyond accuracy of the top 10 (model vs popularity): "
        + ", ".join(f"{n} {beyond[n]:.3g} vs {popular[n]:.3g}" for n in BEYOND_METRICS)
    )
    print("  (recstack evaluate --data DIR --run-dir RUN: the full report vs more baselines)")
    print(f"\nTensorBoard (ingest statistics, training, evaluation, blessing): "
          f"recstack tensorboard --run-dir {run.run_dir}")  # fmt: skip
    timings = ", ".join(f"{name} {sec:.0f} s" for name, sec in report.seconds.items())
    print(f"demo finished in {sum(report.seconds.values()):.0f} s ({timings})")
    return report
