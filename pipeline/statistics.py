"""StatisticsGen: per-split, per-feature statistics of an ingested data directory.

A Beam job reads every split's `tf.train.Example` TFRecords (train, eval, test when it has
files, items, users when present) and computes TFDV-like statistics with combiners
(`pipeline.statistics_combiners`) that merge small accumulators, so no worker holds a whole
split: presence and value counts, numeric min/max/mean/std (Chan's parallel moments), and for
strings the exact number of distinct values with the `top_k` most frequent. The result, with
ingest's stats.json under "ingest", is `<output_dir>/statistics.json`;
`pipeline.statistics_summaries` shows it in TensorBoard.

Workers import no TensorFlow (Examples are parsed with `beam_jobs.examples`' protobuf-only
message class); only the driver-side file helpers do.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes

from beam_jobs.examples import _example_class
from beam_jobs.ingest import pipeline_options
from pipeline.statistics_combiners import (
    KIND_BYTES,
    KIND_FLOAT,
    KIND_INT,
    CountStringsInBundle,
    FeatureStatsFn,
    TopValuesFn,
)
from recstack import features as F
from recstack.fs import read_json, write_json  # noqa: F401  (read_json re-exported)

STATISTICS_FILE = "statistics.json"
#: Splits read when their files exist; train and eval are required.
SPLITS = ("train", "eval", "test", "items", "users")
REQUIRED_SPLITS = ("train", "eval")
#: Worker processes of the local default runner (see `beam_jobs.ingest.pipeline_options`).
DIRECT_NUM_WORKERS = 2

_ONEOF_KINDS = {"bytes_list": KIND_BYTES, "int64_list": KIND_INT, "float_list": KIND_FLOAT}
_MESSAGE_CLASS: list[type] = []


def parse_example(record: bytes) -> dict[str, tuple[str, list[Any]]]:
    """Returns `{feature: (kind, values)}` of one serialized `tf.train.Example`.

    Strings are decoded as UTF-8 (invalid bytes become U+FFFD). A feature whose value list has
    no kind set counts as missing; an empty list of a set kind counts as present, 0 values.
    """
    if not _MESSAGE_CLASS:
        _MESSAGE_CLASS.append(_example_class())
    example = _MESSAGE_CLASS[0].FromString(record)
    parsed = {}
    for name, feature in example.features.feature.items():
        oneof = feature.WhichOneof("kind")
        if oneof is not None:
            values = list(getattr(feature, oneof).value)
            if oneof == "bytes_list":
                values = [v.decode("utf-8", "replace") for v in values]
            parsed[name] = (_ONEOF_KINDS[oneof], values)
    return parsed


def _key_by_feature(feature_value: tuple[str, str], count: int) -> tuple[str, tuple[str, int]]:
    return feature_value[0], (feature_value[1], count)


def _finish_split(
    summary: tuple[int, dict[str, dict[str, Any]]], split: str, strings: dict[str, dict]
) -> tuple[str, dict[str, Any]]:
    num_examples, per_feature = summary
    empty = {"num_unique": 0, "total_count": 0, "top_values": []}  # Only empty lists seen.
    features = {
        name: {**stats, "bytes": strings.get(name, empty)}
        if KIND_BYTES in stats["kinds"]
        else stats
        for name, stats in per_feature.items()
    }  # Beam inputs are immutable: new dicts, not the summary's.
    return split, {"num_examples": num_examples, "features": features}


class ComputeSplitStatistics(beam.PTransform):
    """Serialized Examples of one split -> one `(split, {"num_examples", "features"})`."""

    def __init__(self, split: str, top_k: int) -> None:
        """Args:
        split: Split name the output is keyed by, e.g. "train".
        top_k: Most frequent string values kept per feature.
        """
        super().__init__()
        self._split, self._top_k = split, top_k

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        examples = records | "ParseExamples" >> beam.Map(parse_example)
        summary = examples | "SummarizeFeatures" >> beam.CombineGlobally(FeatureStatsFn())
        strings = (
            examples
            | "CountStringsInBundles" >> beam.ParDo(CountStringsInBundle())
            | "CountStrings" >> beam.CombinePerKey(sum)
            | "KeyByFeature" >> beam.MapTuple(_key_by_feature)
            | "TopStrings" >> beam.CombinePerKey(TopValuesFn(self._top_k))
        )
        return summary | "FinishSplit" >> beam.Map(
            _finish_split, self._split, beam.pvalue.AsDict(strings)
        )


class ComputeStatistics(beam.PTransform):
    """Reads each split's TFRecords and returns one element: `{split: split statistics}`."""

    def __init__(self, patterns: dict[str, str], top_k: int) -> None:
        """Args:
        patterns: `{split: TFRecord glob}` of the splits to read.
        top_k: Most frequent string values kept per feature.
        """
        super().__init__()
        self._patterns, self._top_k = patterns, top_k

    def expand(self, root: beam.pvalue.PBegin) -> beam.PCollection:
        per_split = [
            root
            | f"Read{split.title()}"
            >> beam.io.ReadFromTFRecord(pattern, compression_type=CompressionTypes.GZIP)
            | f"Statistics{split.title()}" >> ComputeSplitStatistics(split, self._top_k)
            for split, pattern in self._patterns.items()
        ]
        return (
            per_split
            | "FlattenSplits" >> beam.Flatten()
            | "CollectSplits" >> beam.combiners.ToDict()
        )


def split_patterns(data_dir: str) -> dict[str, str]:
    """Returns `{split: TFRecord glob}` of the splits of `data_dir` that have files.

    Raises:
      FileNotFoundError: train or eval has no files (not an ingested data directory).
    """
    import tensorflow as tf

    layout = F.DataLayout(data_dir)
    patterns = {split: layout.pattern(split) for split in SPLITS}
    present = {split: p for split, p in patterns.items() if tf.io.gfile.glob(p)}
    for split in REQUIRED_SPLITS:
        if split not in present:
            raise FileNotFoundError(
                f"no files match {patterns[split]}; pass the output directory of "
                "`recstack ingest` (ExampleGen) as data_dir"
            )
    return present


def compute_statistics(
    data_dir: str, output_dir: str, beam_args: Sequence[str] = (), top_k: int = 1000
) -> dict[str, Any]:
    """Runs the statistics job and writes `<output_dir>/statistics.json`.

    Args:
      data_dir: Ingested data directory (`recstack.features.DataLayout`), local or `gs://`.
      output_dir: Directory for statistics.json (created if missing).
      beam_args: Beam options, e.g. `["--runner=DataflowRunner", ...]`; without `--runner` the
        job runs on the local direct runner (`beam_jobs.ingest.pipeline_options`).
      top_k: Most frequent string values kept per feature (>= 1).

    Returns:
      `{"data_dir", "top_k", "splits": {split: {"num_examples", "features": {name: {"kind",
      "kinds", "num_present", "num_missing", "min/max/avg_num_values", "numeric": {...},
      "bytes": {...}}}}}, "ingest": stats.json}`.

    Raises:
      ValueError: `top_k` < 1.
      FileNotFoundError: train or eval has no files, or stats.json is missing.
      RuntimeError: the pipeline did not finish.
    """
    import tensorflow as tf

    if top_k < 1:
        raise ValueError(f"top_k={top_k} must be >= 1")
    patterns = split_patterns(data_dir)
    ingest_stats = read_json(F.DataLayout(data_dir).stats)
    tf.io.gfile.makedirs(output_dir)
    temp = os.path.join(output_dir, f".splits-{uuid.uuid4().hex}.json")
    pipeline = beam.Pipeline(options=pipeline_options(DIRECT_NUM_WORKERS, list(beam_args)))
    _ = (
        pipeline
        | "ComputeStatistics" >> ComputeStatistics(patterns, top_k)
        | "ToJson" >> beam.Map(json.dumps, sort_keys=True)
        | "WriteSplits" >> beam.io.WriteToText(temp, shard_name_template="", num_shards=1)
    )
    state = pipeline.run().wait_until_finish()
    if state != beam.runners.runner.PipelineState.DONE:
        raise RuntimeError(f"the statistics pipeline ended in state {state}; see the runner's log")
    splits = read_json(temp)
    tf.io.gfile.remove(temp)
    stats = {"data_dir": data_dir, "top_k": top_k, "splits": splits, "ingest": ingest_stats}
    write_json(os.path.join(output_dir, STATISTICS_FILE), stats)
    return stats
