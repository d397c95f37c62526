"""The exported `ranking` and `recommender` models against answers computed independently from
the restored Keras model: ranking scores, retrieve -> exclude -> rank -> MMR, backfill,
per-user k, validation errors; and that every signature uses only core TF and ScaNN ops."""

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from saved_model_ops import CORE_OPS, saved_model_ops

from recstack import features as F
from trainer import data
from trainer.export import ExportConfig, export_models
from trainer.train import restore_model

pytestmark = pytest.mark.slow

MAX_K, CANDIDATES = 20, 10


@pytest.fixture(scope="module")
def exact(ranked_run, tmp_path_factory):
    """All three models over a brute-force index (exact, so answers are predictable)."""
    config = ExportConfig(k=MAX_K, num_candidates=CANDIDATES, index="brute_force")
    paths = export_models(ranked_run, str(tmp_path_factory.mktemp("exact")), config)
    return {name: tf.saved_model.load(path).signatures[F.SERVING_SIGNATURE]
            for name, path in paths.items()} | {"paths": paths}  # fmt: skip


@pytest.fixture(scope="module")
def reference(ranked_run, data_dir):
    """The restored model, and each user's items (oldest first) read from the data."""
    model, config, _ = restore_model(ranked_run)
    layout = F.DataLayout(data_dir)
    events = {}
    for pattern in (layout.train_pattern, layout.eval_pattern, layout.test_pattern):
        columns = data.read_columns(pattern, (F.USER_ID, F.ITEM_ID, F.TIMESTAMP))
        for user, item, when in zip(*columns.values(), strict=True):
            events.setdefault(user, []).append((int(when), item))
    items = {user: [item for _, item in sorted(pairs)] for user, pairs in events.items()}
    return {"model": model, "length": config.query.history_length, "items": items,
            "ids": model.catalog.ids.astype(str)}  # fmt: skip


def _query(reference, user):
    """`[d]` query embedding of `user`, built from features assembled here."""
    history = reference["items"].get(user, [])[-reference["length"] :]
    padded = history + [""] * (reference["length"] - len(history))
    zero = tf.constant([0], tf.int64)
    features = {F.USER_ID: tf.constant([user]), F.HISTORY_ITEM_IDS: tf.constant([padded]),
                F.HOUR: zero, F.WEEKDAY: zero}  # fmt: skip
    return reference["model"].query_model(features).numpy()[0]


def _rank_scores(reference, query, ids):
    model = reference["model"]
    candidates = model.embed_items(np.asarray(ids, dtype=object))
    queries = np.repeat(query[None], len(ids), axis=0)
    return model.ranker(tf.constant(queries), tf.constant(candidates)).numpy()


def _expected(reference, user, k, exclude=()):
    """retrieve (exact dot-product order) -> first max(num_candidates, k) not excluded -> rank."""
    ids = reference["ids"]
    excluded = set(exclude) | set(reference["items"].get(user, []))
    query = _query(reference, user)
    dots = reference["model"].embed_items(ids.astype(object)) @ query
    order = ids[np.argsort(-dots, kind="stable")]
    kept = [i for i in order if i not in excluded][: max(CANDIDATES, k)]
    scores = _rank_scores(reference, query, kept)
    return [kept[i] for i in np.argsort(-scores, kind="stable")[:k]]


def _recommend(exact, users, k, lam=0.0, exclude=None):
    exclude = exclude if exclude is not None else [[] for _ in users]
    width = max((len(e) for e in exclude), default=0)
    padded = [list(e) + [""] * (width - len(e)) for e in exclude]
    out = exact[F.MODEL_RECOMMENDER](
        user_id=tf.constant(users), k=tf.constant(k if isinstance(k, list) else [k] * len(users)),
        mmr_lambda=tf.constant([lam] * len(users)),
        exclude_item_ids=tf.constant(padded, tf.string, shape=[len(users), width]),
    )  # fmt: skip
    return {name: value.numpy() for name, value in out.items()}


def test_ranking_scores_equal_the_trained_model(exact, reference):
    user = sorted(reference["items"])[3]
    ids = [*reference["ids"][:6], "not-in-catalog"]
    out = exact[F.MODEL_RANKING](user_id=tf.constant([user]), item_ids=tf.constant([ids]))
    query = _query(reference, user)
    np.testing.assert_allclose(out[F.OUTPUT_SCORES].numpy()[0], _rank_scores(reference, query, ids),
                               rtol=1e-4, atol=1e-5)  # fmt: skip
    titles = dict(zip(reference["ids"], reference["model"].catalog.titles, strict=True))
    assert out[F.OUTPUT_TITLES].numpy()[0].astype(str).tolist() == [titles[i] for i in ids[:6]] + [
        ""
    ]


def test_recommender_with_lambda_zero_is_the_ranking_order_without_seen_items(exact, reference):
    users = sorted(reference["items"])[:12]
    out = _recommend(exact, users, k=8)
    for row, user in enumerate(users):
        got = out[F.OUTPUT_ITEM_IDS][row].astype(str).tolist()
        assert got == _expected(reference, user, 8), user
        assert not set(got) & set(reference["items"][user])
        scores = out[F.OUTPUT_SCORES][row]
        assert np.all(np.diff(scores) <= 1e-6)


def test_excluded_items_are_backfilled_from_further_down_the_retrieval(exact, reference):
    user = sorted(reference["items"])[5]
    first = _recommend(exact, [user], k=8)[F.OUTPUT_ITEM_IDS][0].astype(str).tolist()
    exclude = first[:5] + ["not-in-catalog"]
    out = _recommend(exact, [user], k=8, exclude=[exclude])
    got = out[F.OUTPUT_ITEM_IDS][0].astype(str).tolist()
    assert len(got) == 8 and "" not in got and not set(got) & set(exclude)
    assert got == _expected(reference, user, 8, exclude)


def test_when_exclusions_exhaust_the_catalog_the_rest_is_padding(exact, reference):
    user = sorted(reference["items"])[7]
    unseen = [i for i in reference["ids"] if i not in set(reference["items"][user])]
    keep = unseen[:3]
    exclude = [i for i in reference["ids"] if i not in keep]
    out = _recommend(exact, [user], k=6, exclude=[exclude])
    got = out[F.OUTPUT_ITEM_IDS][0].astype(str).tolist()
    assert sorted(got[:3]) == sorted(keep) and got[3:] == ["", "", ""]
    assert out[F.OUTPUT_SCORES][0][3:].tolist() == [0.0] * 3
    assert out[F.OUTPUT_TITLES][0][3:].tolist() == [b""] * 3


def _intra_list_diversity(reference, lists):
    """Mean over lists of 1 - mean pairwise cosine of the items' candidate embeddings."""
    values = []
    for ids in lists:
        vectors = reference["model"].embed_items(np.asarray(ids, dtype=object))
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        cosine = unit @ unit.T
        pairs = cosine[np.triu_indices(len(ids), 1)]
        values.append(1.0 - pairs.mean())
    return float(np.mean(values))


def test_larger_lambda_raises_intra_list_diversity(exact, reference):
    users = sorted(reference["items"])[:30]
    diversity = []
    for lam in (0.0, 0.5, 1.0):
        ids = _recommend(exact, users, k=8, lam=lam)[F.OUTPUT_ITEM_IDS].astype(str)
        diversity.append(_intra_list_diversity(reference, ids))
    assert diversity[0] < diversity[1] < diversity[2], diversity


def test_each_user_gets_their_own_k(exact, reference):
    users = sorted(reference["items"])[:2]
    out = _recommend(exact, users, k=[3, 8])
    assert out[F.OUTPUT_ITEM_IDS].shape == (2, 8)
    assert out[F.OUTPUT_ITEM_IDS][0].astype(str).tolist()[3:] == [""] * 5
    assert out[F.OUTPUT_ITEM_IDS][0].astype(str).tolist()[:3] == _expected(reference, users[0], 3)


@pytest.mark.parametrize(
    ("k", "lam", "users", "message"),
    [
        ([0], 0.0, ["u1"], "input k must be between 1 and 20"),
        ([21], 0.0, ["u1"], "input k must be between 1 and 20"),
        ([5], 1.5, ["u1"], r"input mmr_lambda must be in \[0, 1\]"),
        ([5], -0.1, ["u1"], r"input mmr_lambda must be in \[0, 1\]"),
        ([5, 5], 0.0, ["u1"], "must have the same batch size"),
    ],
)
def test_invalid_requests_name_the_input(exact, k, lam, users, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        exact[F.MODEL_RECOMMENDER](
            user_id=tf.constant(users), k=tf.constant(k, tf.int32),
            mmr_lambda=tf.constant([lam] * len(k)),
            exclude_item_ids=tf.zeros([len(k), 0], tf.string),
        )  # fmt: skip


def test_signatures_use_only_core_tensorflow_and_scann_ops(ranked_run, exact, tmp_path):
    scann = export_models(ranked_run, str(tmp_path), ExportConfig(k=MAX_K))
    for name in F.SERVED_MODELS:
        outside = sorted(saved_model_ops(scann[name]) - CORE_OPS)
        assert all(op.startswith("Scann") for op in outside), (name, outside)
        assert not saved_model_ops(exact["paths"][name]) - CORE_OPS, name
    assert any(op.startswith("Scann") for op in saved_model_ops(scann[F.MODEL_RECOMMENDER]))
    inputs = exact[F.MODEL_RECOMMENDER].structured_input_signature[1]
    assert {n: (s.dtype, s.shape.as_list()) for n, s in inputs.items()} == {
        F.INPUT_USER_ID: (tf.string, [None]), F.INPUT_K: (tf.int32, [None]),
        F.INPUT_MMR_LAMBDA: (tf.float32, [None]),
        F.INPUT_EXCLUDE_ITEM_IDS: (tf.string, [None, None]),
    }  # fmt: skip


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batch=st.integers(0, 4), other_batch=st.integers(0, 4), width=st.integers(0, 3),
    k=st.integers(-2, MAX_K + 2), lam=st.floats(-0.5, 1.5, allow_nan=False),
    users=st.lists(st.sampled_from(["u00001", "u00002", "", "nobody", "i00001"]), max_size=4),
)  # fmt: skip
def test_any_recommender_input_is_an_answer_or_an_invalid_argument(
    exact, batch, other_batch, width, k, lam, users
):
    user_ids = (users + ["u00003"] * batch)[:batch]
    inputs = dict(
        user_id=tf.constant(user_ids, tf.string, shape=[batch]),
        k=tf.fill([other_batch], k), mmr_lambda=tf.fill([batch], lam),
        exclude_item_ids=tf.fill([batch, width], "i00002"),
    )  # fmt: skip
    valid = batch == other_batch and 1 <= k <= MAX_K and 0 <= np.float32(lam) <= 1
    try:
        out = exact[F.MODEL_RECOMMENDER](**inputs)
    except tf.errors.InvalidArgumentError:
        assert not valid
        return
    assert valid or batch == 0
    assert out[F.OUTPUT_ITEM_IDS].shape[0] == batch
    assert b"i00002" not in out[F.OUTPUT_ITEM_IDS].numpy()
