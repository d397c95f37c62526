"""A SavedModel holding a real ScaNN index (TFRS) loads and serves, with exact top-k results."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras

from recstack import features
from serving.client import ServingClient
from serving.config import ServeConfig
from serving.registry import ModelRegistry
from serving.server import create_server

USERS = ["u0", "u1", "u2"]
ITEMS = [f"i{j}" for j in range(24)]
K = 5
DIM = 4


class ScannRetrieval(tf.Module):
    """`serving_default`: user_id `[batch]` -> item_ids `[batch, K]`, scores `[batch, K]`."""

    def __init__(self, index: tfrs.layers.factorized_top_k.ScaNN) -> None:
        super().__init__()
        self.index = index

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=features.INPUT_USER_ID)])
    def serve(self, user_id: tf.Tensor) -> dict[str, tf.Tensor]:
        scores, item_ids = self.index(user_id)
        return {features.OUTPUT_ITEM_IDS: item_ids, features.OUTPUT_SCORES: scores}


@pytest.fixture(scope="module")
def scann_model(tmp_path_factory):
    """(model base path, user embeddings [users + 1 OOV, DIM], item embeddings [items, DIM])."""
    rng = np.random.default_rng(7)
    user_vectors = rng.normal(size=(len(USERS) + 1, DIM)).astype(np.float32)
    item_vectors = rng.normal(size=(len(ITEMS), DIM)).astype(np.float32)
    query_model = tf_keras.Sequential(
        [
            tf_keras.layers.StringLookup(vocabulary=USERS, mask_token=None),
            tf_keras.layers.Embedding(
                len(USERS) + 1,
                DIM,
                embeddings_initializer=tf_keras.initializers.Constant(user_vectors),
            ),
        ]
    )
    # All leaves searched and every candidate re-scored exactly: results equal brute force.
    index = tfrs.layers.factorized_top_k.ScaNN(
        query_model,
        k=K,
        num_leaves=4,
        num_leaves_to_search=4,
        num_reordering_candidates=len(ITEMS),
    )
    index.index_from_dataset(
        tf.data.Dataset.from_tensor_slices((tf.constant(ITEMS), tf.constant(item_vectors))).batch(8)
    )
    module = ScannRetrieval(index)
    base = tmp_path_factory.mktemp("scann_models")
    tf.saved_model.save(
        module,
        str(base / features.MODEL_RETRIEVAL / "1"),
        signatures={features.SERVING_SIGNATURE: module.serve.get_concrete_function()},
        options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]),
    )
    return str(base), user_vectors, item_vectors


def test_server_loads_and_serves_a_scann_index(scann_model):
    base, user_vectors, item_vectors = scann_model
    registry = ModelRegistry(base)
    assert registry.names == (features.MODEL_RETRIEVAL,)
    server = create_server(registry, ServeConfig(port=0, host="localhost"))
    server.start()
    try:
        with ServingClient(f"localhost:{server.port}") as client:
            recommendations = client.recommend(
                ["u1", "u2", "unknown"], k=K, model=features.MODEL_RETRIEVAL
            )
    finally:
        server.stop(grace=None).wait()

    # Brute force in numpy; StringLookup puts the OOV bucket at row 0, known users after it.
    rows = [1 + USERS.index("u1"), 1 + USERS.index("u2"), 0]
    for row, recs in zip(rows, recommendations, strict=True):
        scores = item_vectors @ user_vectors[row]
        top = np.argsort(-scores)[:K]
        assert [r.item_id for r in recs] == [ITEMS[j] for j in top]
        np.testing.assert_allclose([r.score for r in recs], scores[top], rtol=1e-4, atol=1e-5)
        assert {r.title for r in recs} == {""}
