"""Tests of `export_text_encoder` and of the embedding job running on its SavedModel."""

import os
import pathlib
import subprocess
import sys

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import BeamAssertException, assert_that

from beam_jobs.embed_items import EmbedItems
from recstack import features
from recstack.text import item_text
from trainer.bert.export import INPUT_TEXT, export_text_encoder, run
from trainer.bert.text_tower import BertTextTower

REPO = pathlib.Path(__file__).resolve().parents[3]
HIDDEN = 32
ITEMS = [
    {features.ITEM_ID: "i1", features.TITLE: "Kind of Blue", features.CATEGORIES: ["jazz"]},
    {features.ITEM_ID: "i2", features.DESCRIPTION: "Hard bop, é!", features.CATEGORIES: []},
    {features.ITEM_ID: "cold", features.CATEGORIES: []},
]


@pytest.fixture(scope="module")
def exported(tiny_dir, tmp_path_factory):
    return export_text_encoder(tiny_dir, str(tmp_path_factory.mktemp("bert_export")), max_length=16)


def _serve(path, texts):
    signature = tf.saved_model.load(path).signatures[features.SERVING_SIGNATURE]
    return signature(**{INPUT_TEXT: tf.constant(texts)})[features.ITEM_EMBEDDING].numpy()


def test_signature_honours_the_encoder_contract(exported, tiny_dir):
    signature = tf.saved_model.load(exported).signatures[features.SERVING_SIGNATURE]
    ((name, spec),) = signature.structured_input_signature[1].items()
    assert (name, spec.dtype, spec.shape.as_list()) == (INPUT_TEXT, tf.string, [None])
    ((key, output),) = signature.structured_outputs.items()
    assert (key, output.dtype, output.shape.as_list()) == (
        features.ITEM_EMBEDDING,
        tf.float32,
        [None, HIDDEN],
    )
    texts = [item_text(item) for item in ITEMS]
    vectors = _serve(exported, texts)
    tower = BertTextTower.from_checkpoint(tiny_dir, max_length=16)
    expected = tower(tf.constant(texts)).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    called = tf.saved_model.load(exported)(tf.constant(texts)).numpy()
    np.testing.assert_array_equal(called, vectors)


def test_cli_can_skip_normalisation(tiny_dir, tmp_path):
    path = run(["--output", str(tmp_path), "--checkpoint", tiny_dir, "--no-normalize"])
    tower = BertTextTower.from_checkpoint(tiny_dir, max_length=128)
    np.testing.assert_allclose(
        _serve(path, ["blue train"]), tower(tf.constant(["blue train"])), rtol=0, atol=1e-6
    )


def test_embed_items_runs_on_the_export(exported):
    expected = dict(
        zip(
            [item[features.ITEM_ID] for item in ITEMS],
            _serve(exported, [item_text(item) for item in ITEMS]),
            strict=True,
        )
    )

    def match(actual):
        got = dict(actual)
        if got.keys() != expected.keys():
            raise BeamAssertException(f"ids {sorted(got)}, expected {sorted(expected)}")
        for item_id, vector in got.items():
            np.testing.assert_allclose(vector, expected[item_id], rtol=0, atol=1e-6)

    argv = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
    with test_pipeline.TestPipeline(argv=argv) as p:
        vectors = p | beam.Create(ITEMS) | EmbedItems(exported, min_batch_size=2, max_batch_size=2)
        assert_that(vectors, match)


@pytest.mark.slow
def test_embed_text_cli_loads_the_export_in_a_fresh_process(exported, tmp_path):
    import_items = (
        "import os, tensorflow as tf\n"
        "from beam_jobs.examples import serialize_example\n"
        "from beam_jobs.embed_text import run\n"
        "from recstack import features\n"
        f"os.makedirs({str(tmp_path / 'data')!r})\n"
        f"path = os.path.join({str(tmp_path / 'data')!r}, features.ITEMS_PREFIX + "
        "'-00000-of-00001.tfrecord.gz')\n"
        "with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type='GZIP')) as w:\n"
        f"    for item in {ITEMS!r}:\n"
        "        w.write(serialize_example(item, features.ITEM_FEATURES))\n"
        f"run(['--data', {str(tmp_path / 'data')!r}, '--model', {exported!r}, '--output', "
        f"{str(tmp_path / 'out')!r}, '--direct_running_mode=in_memory', "
        "'--direct_num_workers=1'])\n"
    )
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", import_items],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # A fresh process has not imported tensorflow_text: the job's handler must, or loading the
    # export fails with "Op type not registered 'NormalizeUTF8'".
    assert result.returncode == 0, f"the job failed on the export:\n{result.stderr[-3000:]}"
