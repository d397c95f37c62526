"""The ingestion job: raw logs + item catalog (+ users) -> TFRecords, vocabularies, stats.

Run it locally (the direct runner's engine, several processes):

    python -m beam_jobs.ingest --interactions data/interactions.jsonl \
        --items data/items.jsonl [--users data/users.jsonl] --output out/data

or on Dataflow by adding Beam options, which pass through unchanged:

    python -m beam_jobs.ingest --interactions 'gs://b/raw/*.jsonl' --items gs://b/items.jsonl \
        --output gs://b/data --runner DataflowRunner --project p --region r \
        --temp_location gs://b/tmp

The output directory then holds the files named by `recstack.features.DataLayout`.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult, PipelineState

from beam_jobs import build, outputs
from beam_jobs import stats as stats_lib
from beam_jobs.build import BuildExamples, choose_num_shards, input_bytes
from beam_jobs.config import IngestConfig
from beam_jobs.data_stats import ComputeDataStats
from beam_jobs.dead_letters import (
    SOURCE_CATALOG,
    SOURCE_INTERACTIONS,
    CheckResult,
    WriteDeadLetters,
)
from beam_jobs.dedupe import DropDuplicateItems, DropDuplicateUsers
from beam_jobs.examples import WriteExamples
from beam_jobs.known_items import CheckKnownItems
from beam_jobs.labels import AssignLabels
from beam_jobs.parse import ParseCatalog, ParseInteractions, ParseUsers
from beam_jobs.progress import progress_line
from beam_jobs.split import EVAL_TAG, TEST_TAG, TRAIN_TAG, Cutoffs
from beam_jobs.summary import format_summary
from beam_jobs.vocab import WriteVocabulary
from recstack import config as config_lib
from recstack import features

logger = logging.getLogger(__name__)

#: Section of the YAML config that holds `IngestConfig`.
CONFIG_SECTION = "ingest"


class Ingest(beam.PTransform):
    """The whole ingestion as one composite transform, applied to the pipeline.

    Parses and validates interactions and catalog, drops duplicate catalog items, labels and
    weights events (unknown event types -> dead letters when labels are configured), drops
    (with `strict_catalog`) interactions of unknown items and exact duplicate events, attaches
    each event's history (strictly earlier events only) and context, splits into train, eval
    and test (by time or leave-last-out), writes their examples, the item corpus (every catalog
    item, cold ones included), user and item vocabularies with counts and first-seen times from
    the train split, dead letters, and stats.json with the dataset statistics under
    `output_dir`.
    Returns a PCollection of one element, the stats dict.
    """

    def __init__(
        self,
        config: IngestConfig,
        interactions: str,
        items: str,
        output_dir: str,
        users: str | None = None,
    ):
        """Args:
        config: The job's configuration.
        interactions: Path or glob of the interaction files (local or `gs://`).
        items: Path or glob of the catalog files.
        output_dir: Data directory for the outputs (local or `gs://`).
        users: Path or glob of the optional users table; None for none (the users TFRecords
          are then empty).
        """
        super().__init__()
        self._config = config
        self._interactions = interactions
        self._items = items
        self._output_dir = output_dir
        self._users = users

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        config, output = self._config, self._output_dir
        layout = features.DataLayout(output)
        interactions = pbegin | "ParseInteractions" >> ParseInteractions(
            self._interactions, config.input_format, config.interaction_columns
        )
        catalog = pbegin | "ParseCatalog" >> ParseCatalog(
            self._items, config.input_format, config.item_columns
        )
        items = catalog.rows | "DropDuplicateItems" >> DropDuplicateItems()
        users_table = self._users_table(pbegin)
        _ = users_table.rows | "WriteUsers" >> WriteExamples(
            output,
            features.USERS_PREFIX,
            features.user_features(config.user_attributes),
            config.num_shards,
        )
        labelled = interactions.rows | "AssignLabels" >> AssignLabels(
            config.event_labels, config.event_weights
        )
        known = labelled.rows | "CheckKnownItems" >> CheckKnownItems(
            items.rows, config.strict_catalog
        )
        num_shards = choose_num_shards(input_bytes(self._interactions), config.num_shards)
        built = known.rows | "BuildExamples" >> BuildExamples(
            output,
            num_shards,
            config.history_length,
            config.split_method,
            config.eval_days,
            config.test_days,
            config.split_timestamp,
            config.test_timestamp,
        )
        _ = items.rows | "WriteItemCorpus" >> WriteExamples(
            output, features.ITEMS_PREFIX, features.ITEM_FEATURES, config.num_shards
        )
        _ = built.user_vocab | "WriteUserVocabulary" >> WriteVocabulary(layout.user_vocab)
        _ = built.item_vocab | "WriteItemVocabulary" >> WriteVocabulary(layout.item_vocab)
        interaction_dead = (
            interactions.dead_letters,
            labelled.dead_letters,
            known.dead_letters,
        ) | "CollectInteractionDeadLetters" >> beam.Flatten()
        catalog_dead = (
            catalog.dead_letters,
            items.dead_letters,
        ) | "CollectCatalogDeadLetters" >> beam.Flatten()
        dead = (interaction_dead, catalog_dead, users_table.dead_letters)
        _ = dead | "WriteDeadLetters" >> WriteDeadLetters(output)
        counted = {
            features.STAT_DEAD_LETTERS: interaction_dead,
            features.STAT_USERS: built.user_vocab,
            features.STAT_ITEMS: built.item_vocab,
            features.STAT_CATALOG_ITEMS: items.rows,
            features.STAT_CATALOG_DEAD_LETTERS: catalog_dead,
            features.STAT_USER_ROWS: users_table.rows,
            features.STAT_USER_DEAD_LETTERS: users_table.dead_letters,
        }
        split_stats = built.cutoffs | "SplitStats" >> beam.Map(_split_stats, config)
        rows_in = interactions.lines | "SumLines" >> beam.CombineGlobally(sum)
        row_stats = built.counts | "RowStats" >> beam.Map(
            _row_stats, beam.pvalue.AsSingleton(rows_in)
        )
        data_stats = {
            "catalog": items.rows,
            "item_counts": built.item_counts,
            "activity": built.activity,
            "counts": built.counts,
        } | "ComputeDataStats" >> ComputeDataStats()
        extras = (split_stats, row_stats, data_stats)
        return counted | "WriteStats" >> stats_lib.WriteStats(output, extras)

    def _users_table(self, pbegin: beam.pvalue.PBegin) -> CheckResult:
        """Parsed, de-duplicated users table (empty without one)."""
        if self._users is None:
            empty = pbegin | "NoUsers" >> beam.Create([])
            return CheckResult(empty, pbegin | "NoUserLetters" >> beam.Create([]))
        parsed = pbegin | "ParseUsers" >> ParseUsers(
            self._users,
            self._config.user_attributes,
            self._config.input_format,
            self._config.user_columns,
        )
        unique = parsed.rows | "DropDuplicateUsers" >> DropDuplicateUsers()
        letters = (
            parsed.dead_letters,
            unique.dead_letters,
        ) | "CollectUserDeadLetters" >> beam.Flatten()
        return CheckResult(unique.rows, letters)


def _row_stats(counts: dict[str, Any], rows_in: int) -> dict[str, int]:
    rows = counts[build.ROWS]
    return {
        features.STAT_ROWS_IN: rows_in,
        features.STAT_TRAIN_ROWS: rows[TRAIN_TAG],
        features.STAT_EVAL_ROWS: rows[EVAL_TAG],
        features.STAT_TEST_ROWS: rows[TEST_TAG],
        features.STAT_DUPLICATES_DROPPED: counts[build.DUPLICATES],
    }


def _split_stats(cutoffs: Cutoffs, config: IngestConfig) -> dict[str, Any]:
    return {
        features.STAT_USER_ATTRIBUTES: list(config.user_attributes),
        features.STAT_SPLIT_METHOD: config.split_method,
        features.STAT_SPLIT_TIMESTAMP: cutoffs.eval,
        features.STAT_TEST_SPLIT_TIMESTAMP: cutoffs.test,
    }


#: The local default runner. Beam's "DirectRunner" first tries to fetch and start the Prism
#: runner binary (a download from GitHub, which fails offline and, when it succeeds, ignores
#: `direct_running_mode`) and then falls back to this engine; naming it directly keeps local
#: runs offline, multi-process and reproducible. `--runner DirectRunner` still works.
LOCAL_RUNNER = "FnApiRunner"


def _has_flag(args: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in args)


def pipeline_options(
    direct_num_workers: int, beam_args: list[str] | None = None
) -> PipelineOptions:
    """Returns the Beam options of a run of one of the project's Beam jobs.

    Args:
      direct_num_workers: Worker processes of the local default runner.
      beam_args: Beam command-line options, passed through unchanged. Without `--runner`, the
        job runs on the local direct runner's engine (`LOCAL_RUNNER`) in `multi_processing`
        mode with `direct_num_workers` processes; each of those three defaults applies
        only when `beam_args` does not set the option itself (so
        `--direct_running_mode=in_memory` works).
    """
    args = list(beam_args or [])
    defaults: list[str] = []
    if not _has_flag(args, "--runner"):
        defaults.append(f"--runner={LOCAL_RUNNER}")
        if not _has_flag(args, "--direct_running_mode"):
            defaults.append("--direct_running_mode=multi_processing")
        if not _has_flag(args, "--direct_num_workers"):
            defaults.append(f"--direct_num_workers={direct_num_workers}")
    return PipelineOptions(defaults + args)


def read_stats(output_dir: str) -> dict[str, Any]:
    """Returns the stats.json of the data directory `output_dir` (local or `gs://`)."""
    with FileSystems.open(features.DataLayout(output_dir).stats) as f:
        return json.loads(f.read().decode("utf-8"))


def _log_counters(result: PipelineResult) -> None:
    """Logs the per-outcome counters of the parse and check steps (e.g. dead letters by kind)."""
    namespaces = [SOURCE_INTERACTIONS, SOURCE_CATALOG]
    try:
        counters = result.metrics().query(MetricsFilter().with_namespaces(namespaces))
    except NotImplementedError:
        logger.info("This runner reports no metrics; the counts are in stats.json")
        return
    for counter in sorted(counters["counters"], key=lambda c: str(c.key.metric)):
        value = counter.committed if counter.committed is not None else counter.attempted
        logger.info("  %s.%s: %s", counter.key.metric.namespace, counter.key.metric.name, value)


def run_ingest(
    config: IngestConfig,
    interactions: str,
    items: str,
    output_dir: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
    users: str | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Runs the ingestion job to completion and returns its stats.

    The job writes into a temporary sibling of `output_dir` that replaces `output_dir` only
    when the run succeeded and its row accounting holds (`beam_jobs.outputs`), so the
    directory afterwards holds exactly this run's outputs, and a failed run leaves the
    previous outputs untouched.

    Args:
      config: The job's configuration.
      interactions: Path or glob of the JSON Lines interaction files (local or `gs://`).
      items: Path or glob of the JSON Lines catalog files.
      output_dir: Data directory for the outputs (local or `gs://`).
      beam_args: Beam options, e.g. `["--runner", "DataflowRunner", "--project", "p", ...]`;
        see `pipeline_options` for the local defaults.
      overwrite: Replace the files `output_dir` already holds; when False such files make
        the run fail before it starts.
      users: Path or glob of the optional users table (`user_id` plus the columns named by
        `config.user_attributes`).
      progress: Show a live progress line on stderr (`beam_jobs.progress`); None shows it
        when stderr is a terminal.

    Returns:
      The stats.json dict, keyed by the `features.STAT_*` names.

    Raises:
      OSError: no file matches `interactions` or `items`.
      beam_jobs.outputs.OutputExistsError: `output_dir` holds files and `overwrite` is False.
      RuntimeError: the pipeline did not finish, or rows were lost
        (`rows_in != rows_written + dead_letters + duplicates_dropped`).
    """
    pipeline_opts = pipeline_options(config.direct_num_workers, beam_args)
    with outputs.staged_output(output_dir, overwrite) as staging:
        pipeline = beam.Pipeline(options=pipeline_opts)
        _ = pipeline | "Ingest" >> Ingest(config, interactions, items, staging, users)
        logger.info(
            "Ingesting interactions %s and catalog %s into %s via %s (%s)",
            interactions,
            items,
            output_dir,
            staging,
            config,
        )
        with progress_line("ingest", progress):
            result = pipeline.run()
            state = result.wait_until_finish()
        if state != PipelineState.DONE:
            raise RuntimeError(
                f"the ingestion pipeline ended in state {state}; see the runner's log"
            )
        _log_counters(result)
        stats = read_stats(staging)
        # A run that lost rows is not published.
        stats_lib.check_row_accounting(stats)
        with FileSystems.create(features.DataLayout(staging).summary) as f:
            f.write(format_summary(stats).encode("utf-8"))
    logger.info("Ingested into %s:\n%s", output_dir, format_summary(stats))
    return stats


def load_config(path: str | None, eval_days: float | None = None) -> IngestConfig:
    """The `ingest` section of the YAML config at `path`, with `eval_days` overriding it.

    Raises:
      ValueError: `eval_days` is given while the config sets `split_timestamp`.
    """
    config = config_lib.load_section(path, CONFIG_SECTION, IngestConfig, eval_days=eval_days)
    if eval_days is not None and config.split_timestamp is not None:
        raise ValueError(
            f"--eval-days {eval_days} has no effect: the config sets "
            f"{CONFIG_SECTION}.split_timestamp={config.split_timestamp}, which overrides it; "
            "drop --eval-days or set split_timestamp to null"
        )
    return config


def add_job_arguments(parser: argparse.ArgumentParser, section: str) -> None:
    """Adds the flags every Beam job of the project takes: `--config` (whose `section` it
    reads) and `--overwrite`."""
    parser.add_argument(
        "--config",
        default=None,
        help=f"YAML config; its '{section}' section is used "
        f"(default: {config_lib.DEFAULT_CONFIG}).",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="Replace the outputs already in --output."
    )


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry: parses the job's flags, hands the rest to Beam, runs the job.

    Args:
      argv: Arguments without the program name; None reads `sys.argv`.

    Returns:
      The stats dict of `run_ingest`.

    Raises:
      ValueError: `--eval-days` is given while the config sets `split_timestamp`.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interactions", required=True, help="Path or glob of the logs.")
    parser.add_argument("--items", required=True, help="Path or glob of the catalog.")
    parser.add_argument("--output", required=True, help="Output data directory (or gs://).")
    parser.add_argument("--users", default=None, help="Path or glob of the optional users table.")
    parser.add_argument("--eval-days", type=float, default=None, help="Overrides ingest.eval_days.")
    add_job_arguments(parser, CONFIG_SECTION)
    args, beam_args = parser.parse_known_args(argv)
    config = load_config(args.config, args.eval_days)
    return run_ingest(
        config,
        args.interactions,
        args.items,
        args.output,
        beam_args,
        overwrite=args.overwrite,
        users=args.users,
    )


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run()
