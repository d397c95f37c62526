"""The text-embedding job: item corpus TFRecords -> frozen `item_id -> text vector` TFRecords.

Every catalog item's text (`recstack.text.item_text`) goes through a frozen text encoder
SavedModel with Beam's `RunInference`, in batches, so the trainer and the retrieval index can
use fixed text vectors and new items get vectors without retraining. Run it locally on an
ingested data directory (DirectRunner, several processes):

    python -m beam_jobs.embed_text --data out/data --model out/text_encoder \
        --output out/embeddings

or on any catalog of item TFRecords (`features.ITEM_FEATURES`, gzip), on Dataflow by adding
Beam options, which pass through unchanged:

    python -m beam_jobs.embed_text --items 'gs://b/data/items-*.tfrecord.gz' \
        --model gs://b/text_encoder --output gs://b/embeddings \
        --runner DataflowRunner --project p --region r --temp_location gs://b/tmp

The output directory then holds the files described in `beam_jobs.embeddings`; read them with
`beam_jobs.embeddings.read_embeddings`. The encoder contract is in `beam_jobs.embed_items`.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.runners.runner import PipelineState

from beam_jobs import outputs
from beam_jobs.embed_config import EmbedConfig
from beam_jobs.embed_items import EmbedItems
from beam_jobs.embeddings import WriteEmbeddings, read_embeddings_meta
from beam_jobs.ingest import add_job_arguments, pipeline_options
from beam_jobs.progress import progress_line
from recstack import config as config_lib
from recstack import features

__all__ = [
    "CONFIG_SECTION",
    "EmbedConfig",
    "EmbedItems",
    "EmbedText",
    "WriteEmbeddings",
    "load_config",
    "parse_item",
    "run",
    "run_embed",
]

logger = logging.getLogger(__name__)

#: Section of the YAML config that holds `EmbedConfig`.
CONFIG_SECTION = "embed"


def parse_item(serialized: bytes) -> dict[str, Any]:
    """Decodes one serialized item Example of the corpus into an item dict.

    Decoding is plain protobuf (`tf.train.Example.FromString`), no TensorFlow graph per item.
    Features missing from the record take their `features.ITEM_FEATURES` default (categories:
    an empty list).

    Returns:
      Dict with `item_id`, `title`, `description` (str) and `categories` (list of str).

    Raises:
      ValueError: the record has no non-empty `item_id`.
    """
    import tensorflow as tf  # Lazy: importing this module must not load TensorFlow.

    feature_map = tf.train.Example.FromString(serialized).features.feature
    item: dict[str, Any] = {}
    for spec in features.ITEM_FEATURES:
        strings = feature_map[spec.name].bytes_list.value if spec.name in feature_map else []
        values = [v.decode("utf-8") for v in strings]
        if spec.var_len:
            item[spec.name] = values
        elif values:
            item[spec.name] = values[0]
        else:
            item[spec.name] = spec.default
    if not item[features.ITEM_ID]:
        raise ValueError(
            f"an item record has no {features.ITEM_ID!r} (features {sorted(feature_map)}); "
            "--items must match item corpus TFRecords, e.g. those `recstack ingest` writes"
        )
    return item


class EmbedText(beam.PTransform):
    """The whole job as one composite transform, applied to the pipeline.

    Reads the item TFRecords, decodes them, encodes every item's text and writes the embedding
    shards and embeddings_meta.json under `output_dir`. Returns a PCollection of one element,
    the meta dict.
    """

    def __init__(self, config: EmbedConfig, items: str, model_path: str, output_dir: str):
        """Args:
        config: The job's configuration.
        items: Glob of gzip item TFRecords (local or `gs://`).
        model_path: The encoder's SavedModel directory.
        output_dir: Directory for the outputs (local or `gs://`).

        Raises:
          FileNotFoundError: no file matches `items`, or `model_path` is not a SavedModel.
        """
        super().__init__()
        if not FileSystems.match([items])[0].metadata_list:
            raise FileNotFoundError(
                f"no item TFRecords match {items!r}; pass --data an ingested data directory "
                "or --items a glob of item corpus files"
            )
        self._config = config
        self._items = items
        self._embed = EmbedItems(
            model_path, config.min_batch_size, config.max_batch_size, config.output_key
        )
        self._write = WriteEmbeddings(output_dir, model_path, num_shards=config.num_shards)

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "ReadItemCorpus"
            >> beam.io.ReadFromTFRecord(self._items, compression_type=CompressionTypes.GZIP)
            | "ParseItems" >> beam.Map(parse_item)
            | "EmbedItems" >> self._embed
            | "WriteEmbeddings" >> self._write
        )


def run_embed(
    config: EmbedConfig,
    items: str,
    model_path: str,
    output_dir: str,
    beam_args: list[str] | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Runs the embedding job to completion and returns its meta dict.

    The job writes into a temporary sibling of `output_dir` that replaces it only when the run
    succeeded (`beam_jobs.outputs`), so a failed run (e.g. a non-finite vector) leaves the
    previous embeddings untouched.

    Args:
      config: The job's configuration.
      items: Glob of gzip item TFRecords, e.g. `features.DataLayout(data_dir).items_pattern`.
      model_path: The encoder's SavedModel directory (local or `gs://`).
      output_dir: Directory for the outputs (local or `gs://`).
      beam_args: Beam options, passed through; without `--runner` the job runs on the local
        DirectRunner with `config.direct_num_workers` processes (`ingest.pipeline_options`).
      overwrite: Replace the files `output_dir` already holds; when False such files make the
        run fail before it starts.

    Returns:
      The embeddings_meta.json dict, keyed by the `features.META_*` names.

    Raises:
      FileNotFoundError: no file matches `items`, or `model_path` is not a SavedModel.
      beam_jobs.outputs.OutputExistsError: `output_dir` holds files and `overwrite` is False.
      ValueError: `items` holds no item.
      RuntimeError: the pipeline did not finish.
      Exception: the pipeline's own error, e.g. a ValueError naming an item with a non-finite
        vector or a duplicate id, or an encoder breaking the contract.
    """
    options = pipeline_options(config.direct_num_workers, beam_args)
    with outputs.staged_output(output_dir, overwrite) as staging:
        pipeline = beam.Pipeline(options=options)
        _ = pipeline | "EmbedText" >> EmbedText(config, items, model_path, staging)
        logger.info(
            "Embedding the items of %s with %s into %s via %s (%s)",
            items,
            model_path,
            output_dir,
            staging,
            config,
        )
        with progress_line("embed"):
            state = pipeline.run().wait_until_finish()
        if state != PipelineState.DONE:
            raise RuntimeError(f"the embedding pipeline ended in state {state}; see its log")
        meta = read_embeddings_meta(staging)
        if meta[features.META_COUNT] == 0:
            raise ValueError(f"{items} holds no items; nothing to embed")
    logger.info(
        "Embedded %d items into %d-dim vectors; wrote %s",
        meta[features.META_COUNT],
        meta[features.META_DIM],
        output_dir,
    )
    return meta


def load_config(path: str | None, **overrides: Any) -> EmbedConfig:
    """The `embed` section of the YAML config at `path` (defaults when the section is absent),
    with non-None `overrides` winning."""
    return config_lib.load_section(path, CONFIG_SECTION, EmbedConfig, **overrides)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Command-line entry: parses the job's flags, hands the rest to Beam, runs the job.

    Args:
      argv: Arguments without the program name; None reads `sys.argv`.

    Returns:
      The meta dict of `run_embed`.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", help="Ingested data directory; its item corpus is embedded.")
    source.add_argument("--items", help="Glob of gzip item TFRecords (features.ITEM_FEATURES).")
    parser.add_argument("--model", required=True, help="Text encoder SavedModel directory.")
    parser.add_argument("--output", required=True, help="Output directory (or gs://).")
    parser.add_argument("--min-batch-size", type=int, default=None, help="Overrides embed.*.")
    parser.add_argument("--max-batch-size", type=int, default=None, help="Overrides embed.*.")
    add_job_arguments(parser, CONFIG_SECTION)
    args, beam_args = parser.parse_known_args(argv)
    config = load_config(
        args.config, min_batch_size=args.min_batch_size, max_batch_size=args.max_batch_size
    )
    items = args.items or features.DataLayout(args.data).items_pattern
    return run_embed(config, items, args.model, args.output, beam_args, overwrite=args.overwrite)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    run()
