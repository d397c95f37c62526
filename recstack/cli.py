"""`recstack`: one command line for every stage of the stack.

    recstack generate --output DIR            synthetic logs + catalog with planted structure
    recstack import --source DIR --output DIR  MovieLens / Amazon reviews -> raw JSONL
    recstack ingest --interactions ... --items ... [--users ...] --output DIR [beam options]
    recstack embed --data DIR --model SAVEDMODEL --output DIR   frozen item text vectors
    recstack train --data DIR --run-dir DIR [--set text.mode=frozen ...]
                                              retrieval + ranking, TensorBoard, checkpoints
    recstack export --run-dir DIR --model-base-path DIR
    recstack serve --model-base-path DIR --port 8500   (or --model_config_file FILE)
    recstack query --target HOST:PORT --user-id U [--user-id V] --k 10 [--mmr-lambda 0.3]
    recstack pipeline run --config tfx_config/local.yaml     all stages as one kfp pipeline
    recstack pipeline compile --config tfx_config/vertex.yaml --output pipeline.yaml
    recstack pipeline submit --config tfx_config/vertex.yaml  (pip install 'recstack[vertex]')
    recstack tensorboard --run-dir PIPELINE_ROOT/runs/RUN_ID
    recstack demo --workdir DIR               all of the above, end to end

Stage modules are imported inside each command, so `recstack --help` starts instantly and
TensorFlow is loaded only by the commands that need it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from recstack import features as F
from recstack.config import DEFAULT_CONFIG, load_section

#: `recstack pipeline` without --config runs the demo's configuration, which has every section.
DEFAULT_PIPELINE_CONFIG = DEFAULT_CONFIG


def _generate(args: argparse.Namespace) -> None:
    from recstack import synthetic

    config = load_section(
        args.config, "generate", synthetic.SyntheticConfig,
        num_users=args.num_users, num_items=args.num_items, seed=args.seed,
        malformed_fraction=args.malformed_fraction,
    )  # fmt: skip
    data = synthetic.generate(config, progress=True)
    paths = synthetic.write(data, args.output)
    print(f"wrote {len(data.interaction_lines)} interaction rows, {len(data.items)} items:")
    for name, path in paths.items():
        print(f"  {name}: {path}")


def _import(args: argparse.Namespace) -> None:
    from beam_jobs.importers import import_dataset

    if args.reviews or args.metadata:
        if args.source or not (args.reviews and args.metadata):
            sys.exit("recstack import: give either --source DIR, or both --reviews and --metadata")
        source: str | dict[str, str] = {"reviews": args.reviews, "metadata": args.metadata}
    elif args.source:
        source = args.source
    else:
        sys.exit("recstack import: give --source DIR (or --reviews and --metadata)")
    summary = import_dataset(args.layout, source, args.output)
    print(json.dumps(summary, indent=2, sort_keys=True))
    outputs = summary["outputs"]
    print(f"next: recstack ingest --interactions {outputs['interactions']} "
          f"--items {outputs['items']} --output DATA_DIR")  # fmt: skip


def _ingest(args: argparse.Namespace, beam_args: list[str]) -> None:
    from beam_jobs.ingest import load_config, run_ingest
    from beam_jobs.summary import format_summary

    config = load_config(args.config, args.eval_days)
    stats = run_ingest(
        config,
        args.interactions,
        args.items,
        args.output,
        beam_args,
        overwrite=args.overwrite,
        users=args.users,
    )
    print(format_summary(stats))
    print(f"stats: {F.DataLayout(args.output).stats}")


def _embed(args: argparse.Namespace, beam_args: list[str]) -> None:
    from beam_jobs.embed_text import load_config, run_embed

    config = load_config(
        args.config, min_batch_size=args.min_batch_size, max_batch_size=args.max_batch_size
    )
    items = args.items or F.DataLayout(args.data).items_pattern
    meta = run_embed(config, items, args.model, args.output, beam_args, overwrite=args.overwrite)
    print(json.dumps(meta, indent=2, sort_keys=True))


def _train(args: argparse.Namespace) -> None:
    from trainer.config import TrainConfig
    from trainer.train import RunPaths, train

    config = load_section(args.config, "train", TrainConfig, args.set, epochs=args.epochs)
    paths = RunPaths(args.run_dir, args.checkpoint_dir or "", args.tensorboard_dir or "")
    result = train(config, args.data, paths, verbose=1, warm_start_from=args.warm_start or "")
    print(json.dumps(result.metrics, indent=2))
    print(f"checkpoint: {result.checkpoint}")
    print(f"TensorBoard: tensorboard --logdir {args.run_dir}/tensorboard")


def _export(args: argparse.Namespace) -> None:
    from trainer.export import ExportConfig, export_models

    overrides = {"k": args.k, "models": tuple(args.models.split(",")) if args.models else None}
    config = load_section(args.config, "export", ExportConfig, **overrides)
    for path in export_models(args.run_dir, args.model_base_path, config).values():
        print(path)


def _serve(args: argparse.Namespace) -> None:
    from serving.config import ServeConfig
    from serving.server import serve

    config = load_section(
        args.config, "serve", ServeConfig, port=args.port, host=args.host,
        metrics_port=args.metrics_port, model_config_file=args.model_config_file,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        rest_api_port=args.rest_api_port, enable_batching=args.enable_batching,
        batching_parameters_file=args.batching_parameters_file,
    )  # fmt: skip
    serve(args.model_base_path or "", config)


def _query(args: argparse.Namespace) -> None:
    import grpc

    from serving.client import ServingClient

    if args.model != F.MODEL_RECOMMENDER and (args.exclude or args.mmr_lambda):
        sys.exit(f"error: --exclude and --mmr-lambda need --model {F.MODEL_RECOMMENDER}")
    if (args.model == F.MODEL_RANKING) != bool(args.item_id):
        sys.exit(f"error: --item-id is needed with --model {F.MODEL_RANKING} and only there")
    with ServingClient(args.target, timeout_s=args.timeout, retries=args.retries) as client:
        try:
            if args.model == F.MODEL_RANKING:
                results = client.rank(args.user_id, [args.item_id] * len(args.user_id))
            elif args.model == F.MODEL_RECOMMENDER:
                exclude = [args.exclude or []] * len(args.user_id)
                results = client.recommend(args.user_id, args.k, args.model, args.mmr_lambda,
                                           exclude)  # fmt: skip
            else:
                results = client.recommend(args.user_id, args.k, model=args.model)
        except grpc.RpcError as e:
            sys.exit(f"error: {args.target} answered {e.code().name}: {e.details()}")
    for user, recommendations in zip(args.user_id, results, strict=True):
        print(f"user {user}:")
        for rank, rec in enumerate(recommendations, start=1):
            print(f"  {rank:3d}. {rec.item_id:<12} {rec.score:8.4f}  {rec.title}")


def _pipeline(args: argparse.Namespace) -> None:
    from pipeline.config import load_pipeline_settings

    settings = load_pipeline_settings(args.config or DEFAULT_PIPELINE_CONFIG, args.set)
    if args.action == "run":
        from pipeline.local_runner import PipelineFailedError, run_local
        from pipeline.report import format_run

        try:
            result = run_local(settings)
        except PipelineFailedError as e:
            sys.exit(f"error: {e}")
        print(format_run(result))
        return
    from pipeline import vertex
    from pipeline.definition import VERTEX, create_pipeline
    from pipeline.lineage import code_version

    output = args.output or f"{settings.pipeline.name}.yaml"
    if args.action == "compile" or not args.compiled:
        vertex.compile_pipeline(create_pipeline(settings, code_version(), VERTEX), output)
        print(f"compiled {output}")
    if args.action == "submit":
        print(vertex.submit(args.compiled or output, settings.section("vertex"), {},
                            wait=args.wait))  # fmt: skip


def _tensorboard(args: argparse.Namespace) -> None:
    from pipeline.tensorboard_app import serve_forever

    serve_forever(args.run_dir, args.port, args.host)


def _evaluate(args: argparse.Namespace) -> None:
    from evaluation.cli import evaluate_command

    evaluate_command(args)


def _bench(args: argparse.Namespace) -> None:
    from evaluation.bench_quality import print_result, run_bench

    print_result(run_bench(args.workdir, args.config, args.movielens, not args.skip_cold_start))


def _demo(args: argparse.Namespace) -> None:
    from pipeline.demo import run_demo

    run_demo(args.workdir, args.config)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per stage."""
    parser = argparse.ArgumentParser(prog="recstack", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="YAML config (default: tfx_config/demo.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write synthetic logs and catalog")
    p.add_argument("--output", required=True, help="directory for the raw files")
    p.add_argument("--num-users", type=int)
    p.add_argument("--num-items", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--malformed-fraction", type=float, help="broken rows per valid row")
    p.set_defaults(run=_generate)

    p = sub.add_parser("import", help="convert MovieLens / Amazon reviews files to raw JSONL")
    p.add_argument("--layout", default="auto",
                   help="movielens-100k, movielens-1m, movielens-csv, amazon, or auto")  # fmt: skip
    p.add_argument("--source", help="unpacked dataset directory (gs:// works)")
    p.add_argument("--reviews", help="amazon: reviews JSONL file (.gz ok), with --metadata")
    p.add_argument("--metadata", help="amazon: product metadata JSONL file (.gz ok)")
    p.add_argument("--output", required=True, help="directory for the raw JSONL files")
    p.set_defaults(run=_import)

    p = sub.add_parser("ingest", help="Beam: raw logs -> TFRecords, vocabularies, stats")
    p.add_argument("--interactions", required=True, help="file or glob (gs:// works)")
    p.add_argument("--items", required=True, help="catalog file or glob")
    p.add_argument("--users", help="optional users table file or glob")
    p.add_argument("--output", required=True, help="output data directory")
    p.add_argument("--eval-days", type=float, help="days at the end that form the eval split")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.set_defaults(run=_ingest, beam=True)

    p = sub.add_parser("embed", help="Beam RunInference: item text -> frozen text embeddings")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="data directory written by ingest (its item corpus)")
    source.add_argument("--items", help="glob of item TFRecords")
    p.add_argument("--model", required=True, help="text encoder SavedModel (strings -> vectors)")
    p.add_argument("--output", required=True, help="output directory for the embeddings")
    p.add_argument("--min-batch-size", type=int)
    p.add_argument("--max-batch-size", type=int)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    p.set_defaults(run=_embed, beam=True)

    p = sub.add_parser("train", help="train the TFRS retrieval model")
    p.add_argument("--data", required=True, help="data directory written by ingest")
    p.add_argument("--run-dir", required=True, help="checkpoints, TensorBoard logs, metrics")
    p.add_argument("--epochs", type=int)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the config's train section, dotted for nested "
                   "ones, value in YAML (repeatable): --set text.mode=frozen "
                   "--set ranking.weight=0.5 --set hardware.strategy=mirrored")  # fmt: skip
    p.add_argument("--checkpoint-dir", help="checkpoints and backups (default: the run dir)")
    p.add_argument("--tensorboard-dir", help="TensorBoard logs (default: RUN_DIR/tensorboard)")
    p.add_argument("--warm-start", metavar="RUN_DIR",
                   help="start from this finished run's latest checkpoint (same config), its "
                   "user and item vocabularies grown to --data's: continuous training")  # fmt: skip
    p.set_defaults(run=_train)

    p = sub.add_parser(
        "export", help="export the retrieval, ranking and recommender SavedModels (TF Serving)"
    )
    p.add_argument("--run-dir", required=True)
    p.add_argument("--model-base-path", required=True)
    p.add_argument("--k", type=int, help="retrieval: items per user; recommender: the largest k")
    p.add_argument(
        "--models", help=f"comma-separated subset of {','.join(F.SERVED_MODELS)} (default: all)"
    )
    p.set_defaults(run=_export)

    p = sub.add_parser("serve", help="serve the TensorFlow Serving gRPC (and REST) API")
    models = p.add_mutually_exclusive_group(required=True)
    models.add_argument(
        "--model-base-path",
        "--model_base_path",
        dest="model_base_path",
        help="every sub-directory is a model; its newest version is served",
    )
    models.add_argument(
        "--model_config_file",
        "--model-config-file",
        dest="model_config_file",
        help="TF Serving's text ModelServerConfig: models, version policies, labels",
    )
    p.add_argument(
        "--file_system_poll_wait_seconds",
        "--file-system-poll-wait-seconds",
        dest="file_system_poll_wait_seconds",
        type=float,
        help="seconds between polls for new model versions (0: load once; default 1)",
    )
    p.add_argument("--port", type=int)
    p.add_argument("--host")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics port (0: none)")
    p.add_argument("--rest_api_port", "--rest-api-port", dest="rest_api_port", type=int,
                   help="TF Serving REST API port, e.g. 8501 (0: none)")  # fmt: skip
    p.add_argument("--enable_batching", "--enable-batching", dest="enable_batching",
                   action="store_true", default=None,
                   help="merge concurrent Predict requests (server-side batching)")  # fmt: skip
    p.add_argument("--batching_parameters_file", "--batching-parameters-file",
                   dest="batching_parameters_file",
                   help="BatchingParameters text file (with --enable_batching)")  # fmt: skip
    p.set_defaults(run=_serve)

    p = sub.add_parser("query", help="ask a server (gRPC) for recommendations or scores")
    p.add_argument("--target", default="localhost:8500", help="host:port of the server")
    p.add_argument(
        "--model", default=F.MODEL_RECOMMENDER,
        help=f"{F.MODEL_RECOMMENDER} (default), {F.MODEL_RETRIEVAL} or {F.MODEL_RANKING}",
    )  # fmt: skip
    p.add_argument("--user-id", action="append", required=True, help="repeat for more users")
    p.add_argument("--k", type=int, default=10, help="items per user")
    p.add_argument("--mmr-lambda", type=float, default=0.0,
                   help="recommender: diversity weight in [0, 1]")  # fmt: skip
    p.add_argument("--exclude", action="append", metavar="ITEM_ID",
                   help="recommender: never return this item (repeat)")  # fmt: skip
    p.add_argument("--item-id", action="append",
                   help="ranking: a candidate to score (repeat)")  # fmt: skip
    p.add_argument("--timeout", type=float, default=10.0, help="deadline per request, seconds")
    p.add_argument("--retries", type=int, default=3,
                   help="retries after UNAVAILABLE, within the deadline")  # fmt: skip
    p.set_defaults(run=_query)

    p = sub.add_parser(
        "pipeline", help="all stages as one pipeline: run locally, or compile/submit to Vertex AI"
    )
    p.add_argument("action", choices=("run", "compile", "submit"))
    p.add_argument("--config", default=argparse.SUPPRESS,
                   help="e.g. tfx_config/local.yaml or tfx_config/vertex.yaml")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set train.epochs=5 "
                   "--set pipeline.interactions=gs://bucket/logs/*.jsonl")  # fmt: skip
    p.add_argument("--output", help="compile/submit: the pipeline spec to write "
                   "(default: <pipeline name>.yaml)")  # fmt: skip
    p.add_argument("--compiled", help="submit: an already compiled spec (else compile first)")
    p.add_argument("--wait", action="store_true", help="submit: block until the run ends")
    p.set_defaults(run=_pipeline)

    p = sub.add_parser(
        "evaluate", help="accuracy and beyond-accuracy of a model against baselines, one report"
    )
    p.add_argument("--data", required=True, help="ingested data directory (its eval split)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--model-dir", help="exported recommender (version dir or model dir)")
    source.add_argument("--target", help="host:port of a server with the recommender model")
    p.add_argument("--run-dir", help="training run: evaluated exactly, or the embeddings of "
                   "--model-dir/--target for the MMR sweep and diversity")  # fmt: skip
    p.add_argument("--output", default="evaluation_report",
                   help="report directory: report.json, report.html, tensorboard/")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the evaluate: section, e.g. --set ks=[10,100] "
                   "--set baselines=[popularity,itemknn]")  # fmt: skip
    p.set_defaults(run=_evaluate)

    p = sub.add_parser("bench", help="benchmarks: `quality` (the full table vs baselines)")
    p.add_argument("suite", choices=("quality",))
    p.add_argument("--workdir", default="bench_quality", help="data, runs and the report")
    p.add_argument("--movielens", default="",
                   help="a MovieLens-format directory (ml-100k, ml-1m, ml-25m/latest CSV) "
                   "instead of generated data")  # fmt: skip
    p.add_argument("--skip-cold-start", action="store_true",
                   help="skip the cold-start mode (two more trainings)")  # fmt: skip
    p.set_defaults(run=_bench)

    p = sub.add_parser("tensorboard", help="TensorBoard over a pipeline run (or training run)")
    p.add_argument("--run-dir", required=True,
                   help="a pipeline run (<root>/runs/<run id>) or a log directory")  # fmt: skip
    p.add_argument("--port", type=int, default=6006)
    p.add_argument("--host", default="localhost")
    p.set_defaults(run=_tensorboard)

    p = sub.add_parser("demo", help="generate -> ingest -> train -> export -> serve -> query")
    p.add_argument("--workdir", default="demo_out")
    p.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `recstack` console script."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Beam logs one INFO line per string type hint it cannot resolve; they say nothing useful.
    logging.getLogger("apache_beam.typehints").setLevel(logging.WARNING)
    if getattr(args, "beam", False):
        args.run(args, [a for a in rest if a != "--"])
        return
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.run(args)


if __name__ == "__main__":
    sys.exit(main())
