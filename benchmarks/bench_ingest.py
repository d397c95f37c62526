"""Benchmark of the ingestion job: events per second and peak memory, Beam vs plain Python.

Targets (issue 3): on 1M events over 50k items and 2 cores, the Beam job (DirectRunner,
multi_processing, 2 workers) reaches at least 1.0x the throughput of a plain single-process
Python reference doing the same transformation (`reference_ingest.py`), with a peak memory
under 4 GiB.

    .venv/bin/python benchmarks/bench_ingest.py [--events 1000000] [--items 50000]
        [--users N] [--workers 2] [--repeats 1] [--skip-reference] [--workdir DIR]

Synthetic inputs come from `recstack.synthetic` (their generation time is reported, not
counted). Each job then runs in a fresh subprocess with the default `IngestConfig`, so their
memory is measured apart: peak memory is the peak of the summed RSS of the job's process and
all its descendants (the Beam workers are child processes), sampled every 0.2 s. Throughput is
input lines / job seconds, timed inside the subprocess around the job call (interpreter start
and module imports excluded, TensorFlow's lazy import included for both). The table also
gives the CPU seconds of each job's process tree and those of everything else on the machine
meanwhile ("other CPU s"): on a 2-core machine, a busy neighbour distorts the timings, so rerun
when that column is not near 0. After the runs the outputs' records are counted from the files
and compared between the two jobs.

Prints a table and one JSON line (for BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

import psutil

from recstack import features

#: Targets of issue 3.
TARGET_RATIO = 1.0
TARGET_PEAK_GIB = 4.0
#: Memory sampling period of the job's process tree.
SAMPLE_SECONDS = 0.2
#: Mean events per user of the generated log when `--users` is not given.
EVENTS_PER_USER = 40.0
#: The generator draws a random number of events per user; it is asked for this much more than
#: `--events` so the log can be cut to exactly that many lines.
GENERATION_MARGIN = 1.03
GIB = 1024**3
BEAM, REFERENCE = "beam", "reference"
#: Stats compared between the two jobs.
COMPARED_STATS = (
    features.STAT_ROWS_IN,
    features.STAT_TRAIN_ROWS,
    features.STAT_EVAL_ROWS,
    features.STAT_DEAD_LETTERS,
    features.STAT_DUPLICATES_DROPPED,
    features.STAT_USERS,
    features.STAT_ITEMS,
    features.STAT_CATALOG_ITEMS,
    features.STAT_CATALOG_DEAD_LETTERS,
    features.STAT_SPLIT_TIMESTAMP,
)


@dataclasses.dataclass(frozen=True)
class Inputs:
    """Generated input files.

    Attributes:
      interactions: Path of the JSON Lines log.
      items: Path of the JSON Lines catalog.
      lines: Lines of the log (valid and malformed events).
      seconds: Time taken to generate and write them.
    """

    interactions: str
    items: str
    lines: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class JobRun:
    """One run of one job.

    Attributes:
      seconds: The job call's wall time, measured inside its process.
      process_seconds: Wall time of the whole subprocess (start, imports, job, exit).
      peak_rss: Peak of the summed RSS of the process tree, in bytes.
      max_processes: Most processes seen in the tree at one sample.
      cpu_seconds: User + system CPU seconds of the tree.
      other_cpu_seconds: CPU seconds the rest of the machine used meanwhile (other processes
        compete for the same cores: a large value means the timing is disturbed).
      stats: The stats dict the job returned.
      output_dir: Where it wrote its outputs.
    """

    seconds: float
    process_seconds: float
    peak_rss: int
    max_processes: int
    cpu_seconds: float
    other_cpu_seconds: float
    stats: dict[str, Any]
    output_dir: str


def generate_inputs(
    events: int, items: int, users: int, malformed_fraction: float, seed: int, directory: str
) -> Inputs:
    """Generates a log of exactly `events` lines over `items` catalog items into `directory`.

    The generator's log is time-ordered, so cutting it to `events` lines drops the latest
    ~`GENERATION_MARGIN - 1` of the events, spread over all users.

    Raises:
      ValueError: `events / users` is below the generator's minimum events per user.
    """
    from recstack import synthetic

    started = time.perf_counter()
    margin = GENERATION_MARGIN
    while True:
        config = synthetic.SyntheticConfig(
            num_users=users,
            num_items=items,
            mean_events_per_user=events / users * margin,
            malformed_fraction=malformed_fraction,
            seed=seed,
        )
        data = synthetic.generate(config)
        if len(data.interaction_lines) >= events:
            break
        margin += 0.05  # Rare: the random per-user counts fell short of the margin.
    lines = data.interaction_lines[:events]
    paths = synthetic.write(dataclasses.replace(data, interaction_lines=lines), directory)
    return Inputs(paths["interactions"], paths["items"], len(lines), time.perf_counter() - started)


class TreeSampler(threading.Thread):
    """Samples a process tree (the root and its descendants) until the root exits.

    Attributes:
      peak_rss: Peak of the summed RSS of the tree, in bytes.
      max_processes: Most processes seen in the tree at one sample.
      cpu_seconds: Last-seen user + system CPU seconds of each process, by pid (a process's
        last ~`SAMPLE_SECONDS` before exit are missed).
    """

    def __init__(self, popen: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self._popen = popen
        self._root = psutil.Process(popen.pid)
        self.peak_rss = 0
        self.max_processes = 0
        self.cpu_seconds: dict[int, float] = {}

    def run(self) -> None:
        while self._popen.poll() is None:
            self._sample()
            time.sleep(SAMPLE_SECONDS)

    def _sample(self) -> None:
        try:
            processes = [self._root, *self._root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        rss = count = 0
        for process in processes:
            try:
                with process.oneshot():
                    rss += process.memory_info().rss
                    times = process.cpu_times()
            except (psutil.NoSuchProcess, psutil.ZombieProcess):
                continue  # It exited between listing and reading; its memory is gone.
            self.cpu_seconds[process.pid] = times.user + times.system
            count += 1
        self.peak_rss = max(self.peak_rss, rss)
        self.max_processes = max(self.max_processes, count)


def _busy_cpu_seconds() -> float:
    """CPU seconds spent so far by the whole machine, all processes, outside idle and iowait."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def run_job(kind: str, inputs: Inputs, workers: int, workdir: str, attempt: int) -> JobRun:
    """Runs job `kind` (`BEAM` or `REFERENCE`) in a fresh subprocess and measures it.

    Raises:
      RuntimeError: the job failed; the message quotes the end of its log.
    """
    output = os.path.join(workdir, f"{kind}-{attempt}")
    result_path = os.path.join(workdir, f"{kind}-{attempt}.json")
    log_path = os.path.join(workdir, f"{kind}-{attempt}.log")
    command = [
        sys.executable, os.path.abspath(__file__), "--job", kind,
        "--interactions", inputs.interactions, "--items-file", inputs.items,
        "--output", output, "--result", result_path, "--workers", str(workers),
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        started, busy = time.perf_counter(), _busy_cpu_seconds()
        popen = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeSampler(popen)
        sampler.start()
        popen.wait()
        process_seconds, busy = time.perf_counter() - started, _busy_cpu_seconds() - busy
        sampler.join()
    cpu_seconds = sum(sampler.cpu_seconds.values())
    if popen.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            tail = "".join(f.readlines()[-30:])
        raise RuntimeError(
            f"the {kind} job exited with code {popen.returncode}; end of {log_path}:\n{tail}"
        )
    with open(result_path, encoding="utf-8") as f:
        result = json.load(f)
    return JobRun(
        seconds=result["seconds"],
        process_seconds=process_seconds,
        peak_rss=sampler.peak_rss,
        max_processes=sampler.max_processes,
        cpu_seconds=cpu_seconds,
        other_cpu_seconds=max(0.0, busy - cpu_seconds),
        stats=result["stats"],
        output_dir=output,
    )


def _child(args: argparse.Namespace) -> None:
    """Subprocess entry: runs one job and writes its seconds and stats to `args.result`."""
    # INFO: the job logs its outcome counters, which explain a failure; the log is a file.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    from beam_jobs.config import IngestConfig

    config = IngestConfig(direct_num_workers=args.workers)
    if args.job == BEAM:
        from beam_jobs.ingest import run_ingest

        def job() -> dict[str, Any]:
            return run_ingest(config, args.interactions, args.items_path, args.output)
    else:
        from reference_ingest import run_reference

        def job() -> dict[str, Any]:
            return run_reference(config, args.interactions, args.items_path, args.output)

    started = time.perf_counter()
    stats = job()
    seconds = time.perf_counter() - started
    with open(args.result, "w", encoding="utf-8") as f:
        json.dump({"seconds": seconds, "stats": stats}, f)


def count_outputs(output_dir: str) -> dict[str, int]:
    """Counts the records actually written under `output_dir`, by reading the files back."""
    import glob

    import tensorflow as tf

    layout = features.DataLayout(output_dir)
    counts = {}
    for name, pattern in (
        (features.STAT_TRAIN_ROWS, layout.train_pattern),
        (features.STAT_EVAL_ROWS, layout.eval_pattern),
        (features.STAT_CATALOG_ITEMS, layout.items_pattern),
    ):
        files = sorted(glob.glob(pattern))
        dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
        counts[name] = int(dataset.reduce(0, lambda n, _: n + 1))
    letters = 0
    for path in glob.glob(layout.dead_letter_pattern):
        with open(path, encoding="utf-8") as f:
            letters += sum(1 for line in f if line.strip())
    counts["dead_letters_all"] = letters
    for name, path in (("user_vocab", layout.user_vocab), ("item_vocab", layout.item_vocab)):
        with open(path, encoding="utf-8") as f:
            counts[name] = sum(1 for _ in f)
    return counts


def _vocabularies_identical(first: str, second: str) -> bool:
    for name in (features.USER_VOCAB_FILE, features.ITEM_VOCAB_FILE):
        with (
            open(os.path.join(first, name), "rb") as a,
            open(os.path.join(second, name), "rb") as b,
        ):
            if a.read() != b.read():
                return False
    return True


def _summary(runs: list[JobRun], lines: int) -> dict[str, Any]:
    seconds = statistics.median(run.seconds for run in runs)
    return {
        "seconds": round(seconds, 2),
        "process_seconds": round(statistics.median(r.process_seconds for r in runs), 2),
        "events_per_second": round(lines / seconds),
        "peak_rss_gib": round(max(run.peak_rss for run in runs) / GIB, 3),
        "max_processes": max(run.max_processes for run in runs),
        "cpu_seconds": round(statistics.median(run.cpu_seconds for run in runs), 1),
        "other_cpu_seconds": round(max(run.other_cpu_seconds for run in runs), 1),
        "runs_seconds": [round(run.seconds, 2) for run in runs],
    }


def _print_counts(beam: JobRun, reference: JobRun) -> dict[str, Any]:
    """Prints the stats and the counted files of both jobs side by side; returns the check."""
    files = {BEAM: count_outputs(beam.output_dir), REFERENCE: count_outputs(reference.output_dir)}
    rows = [(key, beam.stats.get(key), reference.stats.get(key)) for key in COMPARED_STATS]
    rows += [(f"file:{key}", files[BEAM][key], files[REFERENCE][key]) for key in files[BEAM]]
    vocab_identical = _vocabularies_identical(beam.output_dir, reference.output_dir)
    print(f"  {'row counts':<26} {'beam':>12} {'reference':>12}")
    for key, b, r in rows:
        print(f"  {key:<26} {b!s:>12} {r!s:>12}  {'same' if b == r else 'DIFFERENT'}")
    agree = all(b == r for _, b, r in rows)
    print(f"  all counts agree: {agree}; vocabulary files byte-identical: {vocab_identical}")
    return {
        "agree": agree,
        "vocabularies_identical": vocab_identical,
        "counts": {key: {BEAM: b, REFERENCE: r} for key, b, r in rows},
    }


def _git_state() -> dict[str, Any] | None:
    """The commit and whether `beam_jobs/` or `benchmarks/` had uncommitted edits; None off git."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, check=True
            )
            .stdout.decode()
            .strip()
        )
        changed = subprocess.run(
            ["git", "status", "--porcelain", "beam_jobs", "benchmarks"],
            cwd=root, capture_output=True, check=True,
        ).stdout.decode()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return {"commit": commit, "uncommitted_changes": bool(changed.strip())}


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="Log lines to ingest.")
    parser.add_argument("--items", type=int, default=50_000, help="Catalog items.")
    parser.add_argument(
        "--users", type=int, default=None, help=f"Users (default: events / {EVENTS_PER_USER:g})."
    )
    parser.add_argument("--workers", type=int, default=2, help="Beam DirectRunner processes.")
    parser.add_argument("--repeats", type=int, default=1, help="Runs of each job (median).")
    parser.add_argument("--skip-reference", action="store_true", help="Run the Beam job only.")
    parser.add_argument("--malformed-fraction", type=float, default=0.005)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--workdir", default=None, help="Keep inputs, outputs and logs here (default: a temp dir)."
    )
    # Internal: the subprocess that runs one job.
    for flag in ("--job", "--interactions", "--output", "--result"):
        parser.add_argument(flag, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--items-file", dest="items_path", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job is None:
        args.users = args.users or max(1, round(args.events / EVENTS_PER_USER))
        if args.events < 1 or args.repeats < 1 or args.workers < 1:
            parser.error("--events, --repeats and --workers must be at least 1")
    return args


def main() -> None:
    """Generates the inputs, runs both jobs, prints the table and the JSON line."""
    args = _parse_args()
    if args.job is not None:
        _child(args)
        return
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_ingest-")
    os.makedirs(workdir, exist_ok=True)
    try:
        report = benchmark(args, workdir)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(report, sort_keys=True))


def benchmark(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """Runs the benchmark in `workdir`, prints the table and returns the JSON report."""
    inputs = generate_inputs(
        args.events, args.items, args.users, args.malformed_fraction, args.seed,
        os.path.join(workdir, "raw"),
    )  # fmt: skip
    kinds = [BEAM] if args.skip_reference else [BEAM, REFERENCE]
    runs: dict[str, list[JobRun]] = {kind: [] for kind in kinds}
    for attempt in range(args.repeats):
        for kind in kinds:
            runs[kind].append(run_job(kind, inputs, args.workers, workdir, attempt))
    summary = {kind: _summary(runs[kind], inputs.lines) for kind in kinds}

    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / GIB:.0f} GiB, {datetime.date.today()}; "
        f"{args.repeats} run(s) each, median seconds, max peak"
    )
    print(
        f"input: {inputs.lines:,} log lines (malformed fraction {args.malformed_fraction:g}) by "
        f"{args.users:,} users over {args.items:,} items; generated in {inputs.seconds:.1f} s "
        "(not counted)"
    )
    print(
        f"  {'job':<22} {'seconds':>8} {'process s':>10} {'events/s':>10} {'peak GiB':>9} "
        f"{'CPU s':>7} {'other CPU s':>12}"
    )
    labels = {BEAM: f"beam ({args.workers} workers)", REFERENCE: "reference (1 process)"}
    for kind in kinds:
        s = summary[kind]
        print(
            f"  {labels[kind]:<22} {s['seconds']:8.1f} {s['process_seconds']:10.1f} "
            f"{s['events_per_second']:10,} {s['peak_rss_gib']:9.2f} {s['cpu_seconds']:7.1f} "
            f"{s['other_cpu_seconds']:12.1f}"
        )
    report: dict[str, Any] = {
        "events": inputs.lines,
        "malformed_fraction": args.malformed_fraction,
        "items": args.items,
        "users": args.users,
        "workers": args.workers,
        "repeats": args.repeats,
        "generate_seconds": round(inputs.seconds, 1),
        "jobs": summary,
        "targets": {"ratio_min": TARGET_RATIO, "peak_gib_max": TARGET_PEAK_GIB},
        "machine": {
            "node": platform.node(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / GIB, 1),
            "python": platform.python_version(),
        },
        "date": datetime.date.today().isoformat(),
        "git": _git_state(),
    }
    beam_peak = summary[BEAM]["peak_rss_gib"]
    report["peak_target_met"] = beam_peak < TARGET_PEAK_GIB
    peak_text = f"beam peak {beam_peak:.2f} GiB (target < {TARGET_PEAK_GIB:g} GiB)"
    if args.skip_reference:
        print(f"  {peak_text}: {'met' if report['peak_target_met'] else 'NOT met'}")
        return report
    ratio = summary[BEAM]["events_per_second"] / summary[REFERENCE]["events_per_second"]
    report["ratio"] = round(ratio, 3)
    report["ratio_target_met"] = ratio >= TARGET_RATIO
    print(
        f"  throughput ratio beam/reference: {ratio:.2f}x (target >= {TARGET_RATIO:g}x): "
        f"{'met' if ratio >= TARGET_RATIO else 'NOT met'}; {peak_text}: "
        f"{'met' if report['peak_target_met'] else 'NOT met'}"
    )
    report["row_counts"] = _print_counts(runs[BEAM][-1], runs[REFERENCE][-1])
    return report


if __name__ == "__main__":
    main()
