"""The warmup requests each exported model carries (`serving.warmup` writes and replays them).

Each model gets Predict requests for batches of 1 and 8 known users and one unknown user, so
table lookups, history splitting, the index search and every batch-shape-dependent kernel run
before a server offers the version.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from recstack import features as F

#: User id of the warmup request for a user the model has never seen.
UNKNOWN_USER = "warmup-unknown-user"
#: Item id of a ranking warmup candidate that is not in the catalog.
UNKNOWN_ITEM = "warmup-unknown-item"


def _request(model: str, inputs: dict[str, np.ndarray]):  # -> predict_pb2.PredictRequest
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = F.SERVING_SIGNATURE
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def warmup_requests(
    model: str, users: Sequence[str], item_ids: Sequence[str], max_k: int
) -> list:  # list[predict_pb2.PredictRequest]
    """Warmup Predict requests for one exported model.

    Args:
      model: `features.MODEL_RETRIEVAL`, `MODEL_RANKING` or `MODEL_RECOMMENDER`.
      users: Known user ids (at least one).
      item_ids: Catalog item ids (at least one).
      max_k: The recommender's largest k.
    """
    batches = [list(users[:1]), list(users[:8]), [UNKNOWN_USER]]
    requests = []
    for index, batch in enumerate(batches):
        user_id = np.array(batch, dtype=object)
        inputs: dict[str, np.ndarray] = {F.INPUT_USER_ID: user_id}
        if model == F.MODEL_RANKING:
            candidates = [*item_ids[:9], UNKNOWN_ITEM]
            inputs[F.INPUT_ITEM_IDS] = np.array([candidates] * len(batch), dtype=object)
        elif model == F.MODEL_RECOMMENDER:
            inputs[F.INPUT_K] = np.full(len(batch), min(10, max_k), np.int32)
            inputs[F.INPUT_MMR_LAMBDA] = np.full(len(batch), 0.5 * index, np.float32)
            # None (one "" column, as clients send it), then one, then two items per user.
            excluded = list(item_ids[:index]) or [""]
            inputs[F.INPUT_EXCLUDE_ITEM_IDS] = np.array(
                [excluded] * len(batch), dtype=object
            ).reshape(len(batch), len(excluded))
        requests.append(_request(model, inputs))
    return requests
