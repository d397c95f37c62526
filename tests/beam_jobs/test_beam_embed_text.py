"""Tests of the text-embedding job: RunInference over item texts -> item_id/vector TFRecords.

Expected vectors come from calling the encoder SavedModel directly on texts written out here,
not from the job's own text recipe or inference code.
"""

import json
import os

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import BeamAssertException, assert_that

from beam_jobs.embed_config import EmbedConfig
from beam_jobs.embed_items import METRICS_NAMESPACE, EmbedItems, encode_batch
from beam_jobs.embed_text import load_config, parse_item, run, run_embed
from beam_jobs.embeddings import embeddings_pattern, read_embeddings
from beam_jobs.examples import serialize_example
from beam_jobs.hashing_encoder import save_hashing_encoder
from recstack import features

IN_MEMORY = ["--direct_running_mode=in_memory", "--direct_num_workers=1"]
DIM = 8

#: Items with the text `recstack.text.item_text` must give them, spelled out.
ITEMS = [
    (
        {
            features.ITEM_ID: "i1",
            features.TITLE: "Kind of Blue",
            features.DESCRIPTION: " Modal jazz, é ",
            features.CATEGORIES: ["jazz", "modal"],
        },
        "Kind of Blue\nModal jazz, é\njazz, modal",
    ),
    ({features.ITEM_ID: "i2", features.TITLE: "Blue Train", features.CATEGORIES: []}, "Blue Train"),
    (
        {features.ITEM_ID: "i3", features.DESCRIPTION: "hard bop", features.CATEGORIES: ["jazz"]},
        "hard bop\njazz",
    ),
    ({features.ITEM_ID: "cold", features.CATEGORIES: []}, ""),
]


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return save_hashing_encoder(str(tmp_path_factory.mktemp("encoder")), dim=DIM, num_buckets=64)


def _direct(model_path, texts):
    """The encoder's vectors for `texts`, from its serving signature."""
    signature = tf.saved_model.load(model_path).signatures[features.SERVING_SIGNATURE]
    return signature(text=tf.constant(texts))[features.ITEM_EMBEDDING].numpy()


def _expected(model_path, items_and_texts):
    ids = [item[features.ITEM_ID] for item, _ in items_and_texts]
    return dict(zip(ids, _direct(model_path, [text for _, text in items_and_texts]), strict=True))


def _vectors_match(expected):
    def match(actual):
        got = dict(actual)
        if len(got) != len(actual) or set(got) != set(expected):
            raise BeamAssertException(f"ids {sorted(got)}, expected {sorted(expected)}")
        for item_id, vector in got.items():
            if vector.dtype != np.float32 or vector.shape != (DIM,):
                raise BeamAssertException(f"{item_id}: {vector.dtype} {vector.shape}")
            np.testing.assert_allclose(vector, expected[item_id], rtol=1e-6, atol=1e-6)

    return match


def _write_items(directory, rows):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{features.ITEMS_PREFIX}-00000-of-00001.tfrecord.gz")
    with tf.io.TFRecordWriter(path, tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
        for row in rows:
            writer.write(serialize_example(row, features.ITEM_FEATURES))
    return path


def _save_module(path, fn, dtype=tf.string, signature=True):
    """Saves a tf.Module whose `__call__` is `fn` over a `[None]` tensor of `dtype`."""
    module = tf.Module()
    module.__call__ = tf.function(fn, input_signature=[tf.TensorSpec([None], dtype)])
    signatures = {features.SERVING_SIGNATURE: module.__call__} if signature else {}
    tf.saved_model.save(module, str(path), signatures=signatures)
    return str(path)


def test_embed_items_equals_the_saved_model_called_on_the_texts(encoder):
    expected = _expected(encoder, ITEMS)
    with test_pipeline.TestPipeline() as p:
        vectors = (
            p
            | beam.Create([item for item, _ in ITEMS])
            | EmbedItems(encoder, min_batch_size=2, max_batch_size=3)
        )
        assert_that(vectors, _vectors_match(expected))


def test_empty_text_gets_a_finite_unit_vector(encoder):
    (vector,) = _direct(encoder, [""])
    assert np.all(np.isfinite(vector))
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(("batch_size", "num_items"), [(3, 10), (4, 12)])
def test_max_batch_size_bounds_every_encoder_call(encoder, batch_size, num_items):
    items = [{features.ITEM_ID: f"i{k}", features.TITLE: f"t{k}"} for k in range(num_items)]
    p = test_pipeline.TestPipeline(argv=IN_MEMORY)
    _ = p | beam.Create(items) | EmbedItems(encoder, batch_size, batch_size)
    result = p.run()
    result.wait_until_finish()
    query = MetricsFilter().with_namespace(METRICS_NAMESPACE)
    metrics = result.metrics().query(query.with_name("inference_request_batch_size"))
    (sizes,) = [d.committed for d in metrics["distributions"]]
    assert sizes.sum == num_items
    assert sizes.max == batch_size
    assert -(-num_items // batch_size) <= sizes.count < num_items
    (embedded,) = result.metrics().query(query.with_name("items_embedded"))["counters"]
    assert embedded.committed == num_items


def test_job_writes_item_vectors_that_read_embeddings_returns(encoder, tmp_path):
    _write_items(tmp_path / "data", [item for item, _ in ITEMS])
    output = tmp_path / "embeddings"
    meta = run(
        ["--data", str(tmp_path / "data"), "--model", encoder, "--output", str(output)]
        + ["--max-batch-size", "2", "--min-batch-size", "1", *IN_MEMORY]
    )
    ids, vectors = read_embeddings(embeddings_pattern(str(output)))
    expected = _expected(encoder, ITEMS)
    assert sorted(ids) == sorted(expected)
    assert vectors.shape == (len(ITEMS), DIM) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, [expected[i] for i in ids], rtol=1e-6, atol=1e-6)
    on_disk = json.loads((output / features.EMBEDDINGS_META_FILE).read_text())
    assert on_disk == meta
    assert meta[features.META_DIM] == DIM and meta[features.META_COUNT] == len(ITEMS)
    assert meta[features.META_MODEL] == encoder
    assert "title" in meta[features.META_TEXT_RECIPE]
    records = tf.data.TFRecordDataset(
        tf.io.gfile.glob(embeddings_pattern(str(output))), compression_type="GZIP"
    )
    parsed = tf.io.parse_example(
        list(records.as_numpy_iterator()),
        {
            features.ITEM_ID: tf.io.FixedLenFeature([], tf.string),
            features.ITEM_EMBEDDING: tf.io.FixedLenFeature([DIM], tf.float32),
        },
    )
    assert parsed[features.ITEM_EMBEDDING].shape == (len(ITEMS), DIM)


def test_any_item_glob_is_accepted_and_duplicate_ids_fail(encoder, tmp_path):
    item = ITEMS[0][0]
    _write_items(tmp_path / "a", [item])
    _write_items(tmp_path / "b", [item])
    with pytest.raises(Exception, match="item_id 'i1' occurs 2 times"):
        run_embed(
            EmbedConfig(), str(tmp_path / "*/items-*"), encoder, str(tmp_path / "o"), IN_MEMORY
        )
    assert not (tmp_path / "o").exists()
    meta = run_embed(
        EmbedConfig(), str(tmp_path / "a/items-*"), encoder, str(tmp_path / "o"), IN_MEMORY
    )
    assert meta[features.META_COUNT] == 1


def test_a_bad_model_path_fails_before_the_pipeline_runs(tmp_path):
    missing = str(tmp_path / "no_model")
    with pytest.raises(FileNotFoundError, match="no SavedModel at '.*no_model'.*--model"):
        EmbedItems(missing)
    _write_items(tmp_path / "data", [ITEMS[0][0]])
    argv = ["--data", str(tmp_path / "data"), "--model", missing, "--output", str(tmp_path / "o")]
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        run(argv + IN_MEMORY)
    assert not (tmp_path / "o").exists()


def test_missing_items_are_named(encoder, tmp_path):
    with pytest.raises(FileNotFoundError, match="no item TFRecords match"):
        run_embed(EmbedConfig(), str(tmp_path / "none-*"), encoder, str(tmp_path / "o"))


def test_a_non_finite_vector_fails_the_job_naming_the_item(tmp_path):
    def nan_for_broken(text):
        broken = tf.strings.regex_full_match(text, ".*broken.*")[:, tf.newaxis]
        return tf.where(broken, float("nan"), tf.ones([tf.size(text), 2]))

    model = _save_module(tmp_path / "nan_model", nan_for_broken)
    items = [{features.ITEM_ID: "ok"}, {features.ITEM_ID: "bad", features.TITLE: "broken"}]
    with pytest.raises(Exception, match=r"item 'bad' a vector with 2 non-finite values"):
        with test_pipeline.TestPipeline(argv=IN_MEMORY) as p:
            _ = p | beam.Create(items) | EmbedItems(model, 1, 2)


def test_a_callable_without_signature_is_called_directly(tmp_path):
    model_path = _save_module(tmp_path / "m", lambda t: tf.ones([tf.size(t), 3]), signature=False)
    model = tf.saved_model.load(model_path)
    assert features.SERVING_SIGNATURE not in model.signatures
    results = encode_batch(model, [tf.constant("a"), tf.constant("b")], {}, model_path)
    assert [r.inference.tolist() for r in results] == [[1.0] * 3] * 2


def test_signature_outputs_are_chosen_by_output_key(tmp_path):
    def two_outputs(text):
        ones = tf.ones([tf.size(text), 2])
        return {"pooled": ones, "other": 2 * ones}

    model_path = _save_module(tmp_path / "m", two_outputs)
    model = tf.saved_model.load(model_path)
    batch = [tf.constant("a")]
    with pytest.raises(ValueError, match=r"outputs \['other', 'pooled'\]; set embed.output_key"):
        encode_batch(model, batch, {}, model_path)
    (result,) = encode_batch(model, batch, {}, model_path, output_key="other")
    assert result.inference.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    ("fn", "dtype", "message"),
    [
        (lambda t: tf.ones([tf.size(t), 2]), tf.int64, "takes a string tensor"),
        (lambda t: tf.ones([tf.size(t)]), tf.string, r"returned float32 \[1\] for 1 texts"),
        (lambda t: tf.ones([tf.size(t), 2], tf.int32), tf.string, "returned int32"),
    ],
    ids=["int-input", "rank-1-output", "int-output"],
)
def test_encoders_breaking_the_contract_are_named(tmp_path, fn, dtype, message):
    model_path = _save_module(tmp_path / "m", fn, dtype)
    example = tf.constant("a") if dtype == tf.string else tf.constant(1, tf.int64)
    with pytest.raises(ValueError, match=message):
        encode_batch(tf.saved_model.load(model_path), [example], {}, model_path)


def test_parse_item_decodes_the_corpus_example():
    item, _ = ITEMS[0]
    assert parse_item(serialize_example(item, features.ITEM_FEATURES)) == item
    cold = parse_item(serialize_example({features.ITEM_ID: "c"}, features.ITEM_FEATURES[:1]))
    assert cold == {
        features.ITEM_ID: "c",
        features.TITLE: "",
        features.DESCRIPTION: "",
        features.CATEGORIES: [],
    }
    with pytest.raises(ValueError, match="no 'item_id'"):
        parse_item(tf.train.Example().SerializeToString())


def test_read_embeddings_needs_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no embedding files match"):
        read_embeddings(str(tmp_path / "embeddings-*"))


def test_config_defaults_apply_without_an_embed_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("ingest:\n  eval_days: 3\n")
    assert load_config(str(path)) == EmbedConfig()
    path.write_text("embed:\n  max_batch_size: 64\n")
    assert load_config(str(path), min_batch_size=8) == EmbedConfig(8, 64)
    with pytest.raises(ValueError, match="max_batch_size=4 is below embed.min_batch_size=16"):
        EmbedConfig(max_batch_size=4)
    with pytest.raises(ValueError, match="num_shards=-1 must be an integer >= 0"):
        EmbedConfig(num_shards=-1)
