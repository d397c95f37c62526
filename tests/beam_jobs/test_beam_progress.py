"""The live progress line of local runs."""

import logging

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from beam_jobs.progress import BUNDLE_LOGGER, progress_line, stage_label


def test_stage_labels_are_short_and_readable():
    assert stage_label("ref_AppliedPTransform_Ingest-ParseCatalog-Read_12") == (
        "Ingest/ParseCatalog/Read"
    )
    assert len(stage_label("ref_AppliedPTransform_" + "x" * 200)) == 60


def test_the_line_counts_the_bundles_of_a_local_run_and_restores_logging(capsys):
    logger = logging.getLogger(BUNDLE_LOGGER)
    before = logger.level, logger.propagate, list(logger.handlers)
    options = PipelineOptions(["--runner=DirectRunner", "--direct_running_mode=in_memory"])
    with progress_line("job", enabled=True) as bar:
        with beam.Pipeline(options=options) as p:
            _ = p | "Numbers" >> beam.Create(range(10)) | "Double" >> beam.Map(lambda x: 2 * x)
        bundles = bar.n
    assert bundles >= 1
    err = capsys.readouterr().err
    assert "job:" in err and "bundles" in err and "Numbers" in err
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_a_disabled_line_prints_nothing(capsys):
    with progress_line("job", enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""
