"""Benchmark of serving: `recommender` latency and throughput over gRPC, the server's overhead
over the same SavedModel called in-process, peak memory, and ScaNN vs brute-force search.

Targets (serving issue): p99 at most 25 ms at 50 requests/s with 1M items; server overhead
(p50 over gRPC at the lowest rate / p50 in-process) at most 1.3x; ScaNN at least 50x the QPS
of brute force at recall@10 at least 0.95, at 1M x 64.

    .venv/bin/python benchmarks/bench_serving.py [--items 100000,1000000] [--rates 20,50,100]
        [--seconds 20] [--callers 1,2,4,8] [--closed-seconds 5] [--search-fractions 0.05,0.1]
        [--json PATH]

Per catalog size: seeded 64-d item embeddings (a mixture of Gaussian clusters, so ScaNN's
partitions behave as on real embeddings), 10k users with 5-50 random items, a random-init query
tower (history and context on) and DCN ranker in a `RecommenderServing` over a ScaNN index with
`ExportConfig().resolved(N)` (the defaults users get), saved with warmup requests and served by
`recstack serve` on loopback. Requests: batch 1, k=10, mmr_lambda=0.2, a random known user, 2
random items excluded. Open loop: sends on a fixed schedule (`Predict.future`), latency from the
scheduled send (no coordinated omission); closed loop: callers send back to back. In-process:
the same SavedModel loaded here, called back to back and paced at the lowest rate, while the
server idles. Index QPS and recall@10 (vs exact search) are measured after the server stopped.
On shared cores, rerun when "other processes' CPU" is not near 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
from collections import Counter

import grpc
import numpy as np
import psutil
import tensorflow as tf
from scann.scann_ops.py import scann_ops  # Also registers the ops the SavedModel needs.
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from pipeline.demo import free_port, start_server, stop_server
from recstack import features as F
from serving.client import ServingClient, recommender_inputs
from serving.warmup import write_warmup_requests
from trainer.candidate_index import BRUTE_FORCE, SCANN, CandidateIndex
from trainer.export import ExportConfig
from trainer.export_warmup import warmup_requests
from trainer.id_embedding import IdEmbedding
from trainer.ranking import DcnRanker
from trainer.recommender_serving import RecommenderServing
from trainer.towers import QueryTower
from trainer.user_tables import UserTables

#: Targets of the serving issue.
TARGET_P99_MS, TARGET_RATE, TARGET_ITEMS = 25.0, 50, 1_000_000
TARGET_OVERHEAD, TARGET_SPEEDUP, TARGET_RECALL = 1.3, 50.0, 0.95
DIM, MAX_K, NUM_CANDIDATES, HISTORY_LENGTH = 64, 100, 200, 20
#: Every request: batch 1, k, MMR weight, and this many random items excluded.
K, MMR_LAMBDA, EXCLUDED = 10, 0.2, 2
#: Distinct requests cycled through by every phase; calls before each phase's timing.
REQUEST_POOL, WARMUP_CALLS = 2000, 50
TIMEOUT_S, READY_TIMEOUT_S = 10.0, 900.0
SCANN_DEFAULT, BRUTE = "scann (default)", "brute force"
#: The same two searches as bare op calls, without a tf.function call around them (on this
#: VM a call of even a trivial tf.function costs ~0.2 ms, more than ScaNN's search itself).
SCANN_OPS, BRUTE_OPS = "scann, op calls", "brute force, op calls"


def clustered_points(rng: np.random.Generator, centers: np.ndarray, count: int) -> np.ndarray:
    """`[count, d]` float32 points around random rows of `centers` `[c, d]`, with norms spread
    log-normally (popular items get larger norms in trained models)."""
    noise = rng.standard_normal((count, centers.shape[1]), dtype=np.float32)
    points = centers[rng.integers(len(centers), size=count)] + noise * (0.5 / math.sqrt(DIM))
    return (points * rng.lognormal(0.0, 0.25, (count, 1))).astype(np.float32)


def make_catalog(items: int, users: int, clusters: int, seed: int) -> dict:
    """Item embeddings `[items, DIM]`, ids, titles, the cluster centers and user histories."""
    rng = np.random.default_rng(seed)
    centers = (rng.standard_normal((clusters, DIM)) / math.sqrt(DIM)).astype(np.float32)
    ids = np.array([f"i{i}" for i in range(items)])
    histories = {f"u{u}": ids[rng.integers(items, size=rng.integers(5, 51))].tolist()
                 for u in range(users)}  # fmt: skip
    return {"embeddings": clustered_points(rng, centers, items), "ids": ids, "centers": centers,
            "titles": np.array([f"Title of item {i}" for i in range(items)]),
            "histories": histories}  # fmt: skip


def build_and_save(catalog: dict, version_dir: str) -> dict:
    """Builds the `recommender` module over a ScaNN index with the default settings and saves
    it with warmup requests to `version_dir`; returns the index, its settings and timings."""
    started = time.perf_counter()
    ids, users = catalog["ids"], list(catalog["histories"])
    params = ExportConfig().resolved(len(ids))
    index = CandidateIndex(catalog["embeddings"], SCANN, item_ids=ids, titles=catalog["titles"],
                           **{n: v for n, v in params.items() if n != "k"})  # fmt: skip
    index_s = time.perf_counter() - started
    tables = UserTables(catalog["histories"], HISTORY_LENGTH, keep_seen=True)
    tower = QueryTower(users, IdEmbedding(ids.tolist(), DIM, name="item_id"), DIM,
                       history_length=HISTORY_LENGTH, use_context=True)  # fmt: skip
    query = tower(tables.query_features(tf.constant(users[:2])))  # Builds the layers.
    ranker = DcnRanker()
    ranker(query, query)
    module = RecommenderServing(tower, tables, index, ranker, MAX_K, NUM_CANDIDATES,
                                exclude_seen=True)  # fmt: skip
    build_s = time.perf_counter() - started
    options = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])
    signatures = {F.SERVING_SIGNATURE: module.serve}
    tf.saved_model.save(module, version_dir, signatures=signatures, options=options)
    requests = warmup_requests(F.MODEL_RECOMMENDER, users, ids.tolist(), MAX_K)
    write_warmup_requests(version_dir, requests)
    return {"index": index, "params": params, "index_s": index_s, "build_s": build_s,
            "save_s": time.perf_counter() - started - build_s}  # fmt: skip


def make_requests(catalog: dict, count: int, seed: int) -> tuple[list[dict], list]:
    """`count` requests, as numpy inputs (in-process) and as `PredictRequest` protos."""
    rng = np.random.default_rng(seed + 1)
    users, ids = list(catalog["histories"]), catalog["ids"]
    inputs, protos = [], []
    for _ in range(count):
        exclude = [ids[rng.integers(len(ids), size=EXCLUDED)].tolist()]
        x = {F.INPUT_USER_ID: np.array([users[rng.integers(len(users))]], dtype=object),
             **recommender_inputs(1, K, MMR_LAMBDA, exclude)}  # fmt: skip
        request = predict_pb2.PredictRequest()
        request.model_spec.name = F.MODEL_RECOMMENDER
        request.model_spec.signature_name = F.SERVING_SIGNATURE
        for name, value in x.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        inputs.append(x)
        protos.append(request)
    return inputs, protos


def latency_stats(seconds: list[float]) -> dict:
    """The count and p50/p95/p99/max in milliseconds (NaN when there are none)."""
    ms = np.asarray(seconds) * 1000.0 if seconds else np.array([np.nan])
    p50, p95, p99, top = (float(x) for x in np.percentile(ms, [50, 95, 99, 100]))
    return {"count": len(seconds), "p50_ms": p50, "p95_ms": p95, "p99_ms": p99, "max_ms": top}


def sleep_until(due: float) -> None:
    """Sleeps until `time.perf_counter()` reaches `due` (returns at once when late)."""
    if (delay := due - time.perf_counter()) > 0:
        time.sleep(delay)


def open_loop(stub, requests: list, rate: float, seconds: float) -> dict:
    """Sends `rate * seconds` requests at fixed intervals without waiting for answers; each
    latency runs from the request's scheduled send time to its answer."""
    count, latencies, errors = max(1, round(rate * seconds)), [], Counter()
    finished = threading.Semaphore(0)

    def record(due: float, future: grpc.Future) -> None:
        if future.code() == grpc.StatusCode.OK:
            latencies.append(time.perf_counter() - due)
        else:
            errors[future.code().name] += 1
        finished.release()

    start, lag = time.perf_counter() + 0.05, 0.0
    for i in range(count):
        due = start + i / rate
        sleep_until(due)
        lag = max(lag, time.perf_counter() - due)
        future = stub.Predict.future(requests[i % len(requests)], timeout=TIMEOUT_S)
        future.add_done_callback(lambda f, due=due: record(due, f))
    for _ in range(count):
        finished.acquire(timeout=2 * TIMEOUT_S)
    window = max(time.perf_counter() - start, count / rate)
    return {"rate": rate, "sent": count, "errors": dict(errors), "send_lag_ms": lag * 1e3,
            "achieved_per_s": len(latencies) / window, **latency_stats(latencies)}  # fmt: skip


def closed_loop(stub, requests: list, callers: int, seconds: float) -> dict:
    """`callers` threads each send a request, wait for its answer and send the next."""
    latencies = [[] for _ in range(callers)]
    errors = [Counter() for _ in range(callers)]
    stop = time.perf_counter() + seconds

    def caller(slot: int) -> None:
        for i in range(slot, 10**9, callers):
            if (sent := time.perf_counter()) >= stop:
                return
            try:
                stub.Predict(requests[i % len(requests)], timeout=TIMEOUT_S)
                latencies[slot].append(time.perf_counter() - sent)
            except grpc.RpcError as e:
                errors[slot][e.code().name] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=caller, args=(slot,)) for slot in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [x for per_caller in latencies for x in per_caller]
    return {"callers": callers, "requests_per_s": len(flat) / (time.perf_counter() - started),
            "errors": dict(sum(errors, Counter())), **latency_stats(flat)}  # fmt: skip


def in_process(version_dir: str, inputs: list[dict], count: int, rate: float) -> dict:
    """Loads the SavedModel here and calls its signature back to back, then paced at `rate`
    (latency from the scheduled time); inputs become tensors and outputs numpy inside the
    timing. Also returns the item ids of the first 5 answers."""
    serve = tf.saved_model.load(version_dir).signatures[F.SERVING_SIGNATURE]

    def call(x: dict) -> np.ndarray:
        outputs = serve(**{name: tf.constant(value) for name, value in x.items()})
        return {name: value.numpy() for name, value in outputs.items()}[F.OUTPUT_ITEM_IDS]

    for x in inputs[:WARMUP_CALLS]:
        call(x)
    back_to_back, paced = [], []
    for x in inputs[:count]:
        started = time.perf_counter()
        call(x)
        back_to_back.append(time.perf_counter() - started)
    start = time.perf_counter()
    for i, x in enumerate(inputs[:count]):
        sleep_until(start + (i + 1) / rate)
        call(x)
        paced.append(time.perf_counter() - start - (i + 1) / rate)
    return {"back_to_back": latency_stats(back_to_back), "paced": latency_stats(paced),
            "answers": [call(x) for x in inputs[:5]]}  # fmt: skip


def peak_rss_mib(pid: int | str = "self") -> float:
    """Peak resident set size (VmHWM) of process `pid`, in MiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        return int(next(ln for ln in f if ln.startswith("VmHWM:")).split()[1]) / 1024


def cpu_seconds(pids: list[int]) -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, user + system seconds of `pids`)."""
    t = psutil.cpu_times()
    own = sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)
    return t.user + t.nice + t.system + t.irq + t.softirq, own


def wait_ready(process, target: str, log_path: str) -> float:
    """Waits until the server serves the recommender; returns the seconds it took.

    Raises:
      RuntimeError: the server exited or was not ready in time (the message has its log).
    """
    started = time.perf_counter()
    with ServingClient(target) as client:
        while process.poll() is None and time.perf_counter() - started < READY_TIMEOUT_S:
            try:
                client.wait_until_ready(timeout_s=5.0, model=F.MODEL_RECOMMENDER)
                return time.perf_counter() - started
            except TimeoutError:
                continue
    with open(log_path, encoding="utf-8", errors="replace") as f:
        tail = "".join(f.readlines()[-30:])
    raise RuntimeError(f"server (exit code {process.poll()}) not ready; its log:\n{tail}")


def serve_and_measure(args, inputs: list, protos: list, base_path: str) -> dict:
    """Serves `base_path` in a subprocess; runs the open and closed loops, then the in-process
    baseline while the server idles; reads the server's peak memory; always stops it."""
    port, log_path = free_port(), os.path.join(os.path.dirname(base_path), "server.log")
    process = start_server(base_path, port, log_path, None)
    try:
        out = {"ready_s": wait_ready(process, f"127.0.0.1:{port}", log_path)}
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            for request in protos[:WARMUP_CALLS]:
                stub.Predict(request, timeout=TIMEOUT_S)
            before, started = cpu_seconds([os.getpid(), process.pid]), time.perf_counter()
            out["open_loop"] = [open_loop(stub, protos, r, args.seconds) for r in args.rates]
            out["closed_loop"] = [closed_loop(stub, protos, c, args.closed_seconds)
                                  for c in args.callers]  # fmt: skip
            version_dir = os.path.join(base_path, F.MODEL_RECOMMENDER, "1")
            local = in_process(version_dir, inputs, args.in_process_requests, args.rates[0])
            after = cpu_seconds([os.getpid(), process.pid])
            out["wall_s"] = time.perf_counter() - started
            answers = [stub.Predict(p, timeout=TIMEOUT_S).outputs[F.OUTPUT_ITEM_IDS]
                       for p in protos[:5]]  # fmt: skip
        out["other_cpu_s"] = max(0.0, after[0] - before[0] - (after[1] - before[1]))
        pairs = zip(answers, local.pop("answers"), strict=True)
        out["answers_agree"] = sum(bool(np.array_equal(tf.make_ndarray(a), b)) for a, b in pairs)
        out["in_process"], out["server_peak_rss_mib"] = local, peak_rss_mib(process.pid)
    finally:
        stop_server(process)
    return out


def index_searches(
    index: CandidateIndex, num_leaves: int, brute: CandidateIndex, fractions: list[float]
) -> dict:
    """`tf.function`s `[b, DIM]` queries -> `[b, K]` rows, by name: the ScaNN index as served,
    its raw searcher over each fraction of the partitions (same re-scoring), brute force."""
    spec = [tf.TensorSpec([None, DIM], tf.float32)]
    pre_reorder = max(index.num_reordering_candidates, 4 * K)  # As `CandidateIndex.search`.

    def raw(leaves: int):
        def search(queries: tf.Tensor) -> tf.Tensor:
            searcher = scann_ops.searcher_from_module(index.searcher)
            return searcher.search_batched_parallel(queries, K, pre_reorder, leaves).indices

        return tf.function(search, input_signature=spec)

    searches = {SCANN_DEFAULT: tf.function(lambda q: index.search(q, K)[1], spec)}
    for fraction in fractions:
        leaves = max(1, round(fraction * num_leaves))
        searches[f"scann {leaves} leaves"] = raw(leaves)
    searches[BRUTE] = tf.function(lambda q: brute.search(q, K)[1], spec)
    searcher = scann_ops.searcher_from_module(index.searcher)  # One handle, made once.
    searches[SCANN_OPS] = lambda q: searcher.search_batched_parallel(q, K, pre_reorder).indices
    searches[BRUTE_OPS] = lambda q: (
        tf.math.top_k(tf.matmul(q, brute.embeddings, transpose_b=True), K).indices
    )
    return searches


def queries_per_second(search, batches: list[tf.Tensor], seconds: float) -> float:
    """Queries answered per second by sequential calls of `search` cycling over `batches`."""
    search(batches[0]).numpy()
    done, calls, started = 0, 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - started < seconds:
        done += len(search(batches[calls % len(batches)]).numpy())
        calls += 1
    return done / (time.perf_counter() - started)


def compare_indexes(index: CandidateIndex, leaves: int, catalog: dict, args) -> dict:
    """Recall@K against exact search, and QPS at batches of 1 and 64, of each search."""
    rng = np.random.default_rng(args.seed + 2)
    queries = clustered_points(rng, catalog["centers"], args.queries // 64 * 64 or 64)
    exact = np.concatenate([np.argpartition(-(q @ catalog["embeddings"].T), K, axis=1)[:, :K]
                            for q in np.split(queries, len(queries) // 64)])  # fmt: skip
    brute = CandidateIndex(catalog["embeddings"], BRUTE_FORCE)
    batches = {b: [tf.constant(queries[i : i + b]) for i in range(0, len(queries), b)]
               for b in (1, 64)}  # fmt: skip
    results = {}
    for name, search in index_searches(index, leaves, brute, args.search_fractions).items():
        rows = np.concatenate([search(batch).numpy() for batch in batches[64]])
        hits = sum(len(set(a) & set(b)) for a, b in zip(rows.tolist(), exact.tolist(), strict=True))
        results[name] = {"recall@10": hits / exact.size}
        for b, chunks in batches.items():
            results[name][f"qps_batch{b}"] = queries_per_second(search, chunks, args.index_seconds)
    return results


def run_catalog(items: int, args: argparse.Namespace) -> dict:
    """Every measurement for one catalog size (model files in a temporary directory)."""
    catalog = make_catalog(items, args.users, args.clusters, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_serving-") as workdir:
        base_path = os.path.join(workdir, "models")
        built = build_and_save(catalog, os.path.join(base_path, F.MODEL_RECOMMENDER, "1"))
        inputs, protos = make_requests(catalog, REQUEST_POOL, args.seed)
        served = serve_and_measure(args, inputs, protos, base_path)
    result = {"items": items, **built, **served}
    result["indexes"] = compare_indexes(
        result.pop("index"), built["params"]["num_leaves"], catalog, args
    )
    lowest, local = served["open_loop"][0], served["in_process"]
    for p in ("p50", "p99"):
        result[f"overhead_{p}"] = lowest[f"{p}_ms"] / local["back_to_back"][f"{p}_ms"]
        result[f"overhead_paced_{p}"] = lowest[f"{p}_ms"] / local["paced"][f"{p}_ms"]
    result["bench_peak_rss_mib"] = peak_rss_mib()
    return result


def ms(stats: dict) -> tuple[str, ...]:
    """p50, p95 and p99 of `latency_stats`, formatted."""
    return tuple(f"{stats[f'{p}_ms']:.2f}" for p in ("p50", "p95", "p99"))


def table(columns: str, rows: list[tuple]) -> None:
    """Prints `rows` under the space-separated `columns`, each cell right-aligned in 9."""
    print("  " + "".join(f"{name:>9}" for name in columns.split()))
    for row in rows:
        print("  " + "".join(f"{cell:>9}" for cell in row))


def report_catalog(r: dict) -> None:
    """Prints the tables of one catalog size."""
    p = r["params"]
    print(f"\ncatalog {r['items']:,} items x {DIM}: ScaNN {p['num_leaves']} leaves, "
          f"{p['num_leaves_to_search']} searched, {p['num_reordering_candidates']} re-scored, "
          f"{p['dimensions_per_block']} dims/block; ScaNN build {r['index_s']:.1f} s, model "
          f"build {r['build_s']:.1f} s, save {r['save_s']:.1f} s, server ready "
          f"{r['ready_s']:.1f} s\n  open loop over gRPC (batch 1, k={K}, mmr_lambda="
          f"{MMR_LAMBDA}, {EXCLUDED} items excluded), ms from the scheduled send; lag: the "
          "client's worst lateness in sending")  # fmt: skip
    table("rate/s sent done/s p50 p95 p99 max lag_ms errors", [
        (f"{o['rate']:g}", o["sent"], f"{o['achieved_per_s']:.1f}", *ms(o),
         f"{o['max_ms']:.1f}", f"{o['send_lag_ms']:.1f}", sum(o["errors"].values()))
        for o in r["open_loop"]])  # fmt: skip
    print("  closed loop over gRPC (callers send back to back), ms")
    table("callers requests req/s p50 p95 p99 errors", [
        (c["callers"], c["count"], f"{c['requests_per_s']:.1f}", *ms(c),
         sum(c["errors"].values())) for c in r["closed_loop"]])  # fmt: skip
    best = max(r["closed_loop"], key=lambda c: c["requests_per_s"])
    errors = {o["rate"]: o["errors"] for o in r["open_loop"] if o["errors"]}
    print(f"  max sustained: {best['requests_per_s']:.1f} req/s ({best['callers']} callers); "
          f"errors by code: {errors or 'none'}; other processes' CPU during the load and "
          f"in-process phases: {r['other_cpu_s']:.1f} s in {r['wall_s']:.0f} s")  # fmt: skip
    lowest = r["open_loop"][0]["rate"]
    print(f"  in-process, same SavedModel, server idle ({r['in_process']['paced']['count']} calls "
          f"each), ms; x: server's at {lowest:g}/s / in-process")  # fmt: skip
    table("call p50 p95 p99 p50_x p99_x", [
        ("serial", *ms(r["in_process"]["back_to_back"]), f"{r['overhead_p50']:.2f}",
         f"{r['overhead_p99']:.2f}"),
        (f"{lowest:g}/s", *ms(r["in_process"]["paced"]), f"{r['overhead_paced_p50']:.2f}",
         f"{r['overhead_paced_p99']:.2f}")])  # fmt: skip
    print(f"  server and in-process answers agree on {r['answers_agree']}/5 requests; peak RSS: "
          f"server {r['server_peak_rss_mib']:,.0f} MiB, benchmark process "
          f"{r['bench_peak_rss_mib']:,.0f} MiB\n  index search in-process, k={K}, x: QPS / "
          "brute force's at the same batch")  # fmt: skip
    for name, x in r["indexes"].items():
        brute = r["indexes"][BRUTE_OPS if name.endswith("op calls") else BRUTE]
        ratios = {b: x[f"qps_batch{b}"] / brute[f"qps_batch{b}"] for b in (1, 64)}
        cells = [f"batch {b}: {x[f'qps_batch{b}']:8.0f} QPS {v:6.1f}x" for b, v in ratios.items()]
        print(f"  {name:<20} recall@10 {x['recall@10']:.4f}  " + "  ".join(cells))


def targets(results: list[dict]) -> list[dict]:
    """Each target with its measured value, at the 1M catalog (else at the largest one)."""
    r = max(results, key=lambda x: (x["items"] == TARGET_ITEMS, x["items"]))
    p99 = {o["rate"]: o["p99_ms"] for o in r["open_loop"]}.get(TARGET_RATE, math.nan)
    approx, brute = r["indexes"][SCANN_OPS], r["indexes"][BRUTE_OPS]
    paced = r["overhead_paced_p50"]
    rows = [(f"p99 at {TARGET_RATE}/s <= {TARGET_P99_MS:g} ms", p99, p99 <= TARGET_P99_MS),
            (f"server/in-process p50 <= {TARGET_OVERHEAD}x (both at the lowest rate)", paced,
             paced <= TARGET_OVERHEAD),
            (f"ScaNN recall@10 >= {TARGET_RECALL}", approx["recall@10"],
             approx["recall@10"] >= TARGET_RECALL)]  # fmt: skip
    for b in (1, 64):
        ratio = approx[f"qps_batch{b}"] / brute[f"qps_batch{b}"]
        rows.append((f"ScaNN QPS >= {TARGET_SPEEDUP:g}x brute force, op calls, batch {b}", ratio,
                     ratio >= TARGET_SPEEDUP and approx["recall@10"] >= TARGET_RECALL))  # fmt: skip
    return [{"items": r["items"], "target": t, "value": v, "pass": bool(ok)} for t, v, ok in rows]


def machine() -> dict:
    """CPU count and model, memory, date, versions and the command line."""
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    return {"node": platform.node(), "cpus": os.cpu_count(), "cpu_model": cpu,
            "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "python": platform.python_version(), "tensorflow": tf.__version__,
            "command": " ".join([os.path.relpath(sys.executable), *sys.argv])}  # fmt: skip


def _parse_args() -> argparse.Namespace:
    def numbers(kind: type):
        return lambda text: [kind(x) for x in text.split(",") if x.strip()]

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--items", type=numbers(int), default=[100_000, TARGET_ITEMS], help="catalog sizes")
    add("--rates", type=numbers(float), default=[20, 50, 100], help="open-loop requests/s")
    add("--seconds", type=float, default=20.0, help="per open-loop rate")
    add("--callers", type=numbers(int), default=[1, 2, 4, 8], help="closed-loop concurrency")
    add("--closed-seconds", type=float, default=5.0, help="per closed-loop caller count")
    add("--in-process-requests", type=int, default=400, help="calls of each in-process run")
    add("--users", type=int, default=10_000)
    add("--clusters", type=int, default=300, help="Gaussian clusters of the item embeddings")
    add("--queries", type=int, default=1024, help="for the index recall (a multiple of 64)")
    add("--index-seconds", type=float, default=5.0, help="per index QPS figure")
    add("--search-fractions", type=numbers(float), default=[],
        help="also time the ScaNN index searching these fractions of its partitions")  # fmt: skip
    add("--seed", type=int, default=42)
    add("--json", default="", help="write every figure to this file")
    args = parser.parse_args()
    args.rates = sorted(args.rates)  # The lowest is the overhead's baseline.
    if not args.items or not args.rates or not args.callers or min(args.items) < MAX_K:
        parser.error(f"--items (each >= {MAX_K}), --rates and --callers must not be empty")
    return args


def main() -> None:
    """Runs every catalog size, prints the tables and the targets, writes `--json`."""
    args = _parse_args()
    info = machine()
    print(f"machine: {info['node']}, {info['cpus']} CPUs ({info['cpu_model']}), "
          f"{info['memory_gib']} GiB; {info['date']}; Python {info['python']}, TF "
          f"{info['tensorflow']}\ncommand: {info['command']}", flush=True)  # fmt: skip
    results = []
    for items in args.items:
        results.append(run_catalog(items, args))
        report_catalog(results[-1])
    checks = targets(results)
    print(f"\ntargets at {checks[0]['items']:,} items (the issue's are at {TARGET_ITEMS:,})")
    for c in checks:
        print(f"  {c['target']:<44}{c['value']:>9.3f}  {'PASS' if c['pass'] else 'FAIL'}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"machine": info, "args": vars(args), "catalogs": results,
                       "targets": checks}, f, indent=1)  # fmt: skip


if __name__ == "__main__":
    main()
