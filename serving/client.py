"""A client of the TensorFlow Serving gRPC API: predictions, recommendations, metadata, status.

Built only on the official `tensorflow_serving.apis` stubs, so it talks to this project's
server and to a real `tensorflow_model_server` alike. RPC failures surface as `grpc.RpcError`
with TF Serving's status code and message (`e.code()`, `e.details()`).

    with ServingClient("localhost:8500") as client:
        client.wait_until_ready(30, model=features.MODEL_RECOMMENDER)
        for rec in client.recommend(["u1"], k=5, mmr_lambda=0.3, exclude=[["i7"]])[0]:
            print(rec.item_id, rec.title, rec.score)

Every RPC has a deadline (`timeout_s`) and is retried by gRPC itself (a channel retry policy)
when the server answers UNAVAILABLE, e.g. while it restarts or drains.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from recstack import features

logger = logging.getLogger(__name__)

_SIGNATURE_DEF_FIELD = "signature_def"
_POLL_SECONDS = 0.2
#: Status codes gRPC retries: the server is (momentarily) not there, nothing ran.
RETRYABLE_CODES = ("UNAVAILABLE",)


def retry_service_config(retries: int, initial_backoff_s: float = 0.1) -> str:
    """gRPC service config JSON retrying every method up to `retries` times on UNAVAILABLE,
    with exponential backoff from `initial_backoff_s` (at most 2 s between attempts)."""
    policy = {
        "maxAttempts": retries + 1,
        "initialBackoff": f"{initial_backoff_s}s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": list(RETRYABLE_CODES),
    }
    return json.dumps({"methodConfig": [{"name": [{}], "retryPolicy": policy}]})


@dataclasses.dataclass(frozen=True)
class Recommendation:
    """One recommended item.

    Attributes:
      item_id: The item's id from the catalog.
      title: The item's title; "" when the model exports no titles.
      score: The model's score (higher is better; comparable within one user's list only).
    """

    item_id: str
    title: str
    score: float


class ServingClient:
    """Calls one TensorFlow Serving endpoint (this project's server or the real one).

    Args:
      target: `host:port` of the gRPC API, e.g. `localhost:8500`.
      timeout_s: Deadline of each RPC (all its attempts), in seconds.
      max_message_mb: Largest message sent or received, in MiB (match the server's).
      retries: Further attempts after an UNAVAILABLE answer (0: none), with backoff, within
        the deadline.

    Usable as a context manager, which closes the channel on exit.
    """

    def __init__(
        self, target: str, timeout_s: float = 10.0, max_message_mb: int = 64, retries: int = 3
    ) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s={timeout_s} must be > 0 seconds")
        if max_message_mb < 1:
            raise ValueError(f"max_message_mb={max_message_mb} must be >= 1")
        if not 0 <= retries <= 4:  # gRPC caps maxAttempts at 5.
            raise ValueError(f"retries={retries} must be in 0..4")
        max_bytes = max_message_mb * 1024 * 1024
        self._target = target
        self._timeout_s = timeout_s
        options = [
            ("grpc.max_send_message_length", max_bytes),
            ("grpc.max_receive_message_length", max_bytes),
            ("grpc.enable_retries", int(retries > 0)),
        ]
        if retries:
            options.append(("grpc.service_config", retry_service_config(retries)))
        self._channel = grpc.insecure_channel(target, options=options)
        self._predictions = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)

    @property
    def target(self) -> str:
        """The `host:port` this client calls."""
        return self._target

    def predict(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        signature_name: str = features.SERVING_SIGNATURE,
        version: int | None = None,
        output_filter: Sequence[str] = (),
    ) -> dict[str, np.ndarray]:
        """Runs signature `signature_name` of `model` on `inputs`.

        Args:
          model: Model name, e.g. `features.MODEL_RETRIEVAL`.
          inputs: Signature inputs by name, e.g. `{features.INPUT_USER_ID: np.array(["u1"])}`
            (a string array of shape `[batch]`). Strings are sent as DT_STRING.
          signature_name: Signature to run.
          version: Model version to require; None takes the newest loaded one.
          output_filter: Output names to return; empty returns all outputs.

        Returns:
          The outputs by name as numpy arrays (strings as `bytes` objects), e.g. `item_ids`
          `[batch, k]` and `scores` `[batch, k]`.

        Raises:
          grpc.RpcError: The server refused or failed the request (e.g. NOT_FOUND for an
            unknown model, INVALID_ARGUMENT for wrong inputs).
        """
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = signature_name
        if version is not None:
            request.model_spec.version.value = version
        for name, values in inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(_as_array(values)))
        request.output_filter.extend(output_filter)
        response = self._predictions.Predict(request, timeout=self._timeout_s)
        return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}

    def recommend(
        self,
        user_ids: Sequence[str],
        k: int,
        model: str = features.MODEL_RECOMMENDER,
        mmr_lambda: float = 0.0,
        exclude: Sequence[Sequence[str]] | None = None,
    ) -> list[list[Recommendation]]:
        """Returns up to `k` items for each user, best first.

        Args:
          user_ids: Users to recommend for (one request, batch `[len(user_ids)]`).
          k: Items per user.
          model: `features.MODEL_RECOMMENDER` (or a model with its signature: `k`,
            `mmr_lambda` and `exclude_item_ids` are sent), or a retrieval-style model whose
            signature maps `user_id` to `item_ids`, `scores` (and optionally `titles`) of shape
            `[batch, model_k]`, cut to `k` here.
          mmr_lambda: Recommender only: diversity weight in [0, 1] (0: the ranking order).
          exclude: Recommender only: per user, item ids never to return.

        Returns:
          One list per user, in the order of `user_ids`: `k` recommendations, fewer only when
          the recommender ran out of items that are not excluded.

        Raises:
          ValueError: `k < 1`, `user_ids` is empty, `exclude` has the wrong length, `k`
            exceeds what a retrieval-style model returns, or the model's outputs are not
            those above.
          TypeError: `user_ids` is a single string instead of a sequence of strings.
          grpc.RpcError: The server refused or failed the request (e.g. INVALID_ARGUMENT for
            a k above the recommender's largest).
        """
        users = _user_batch(user_ids)
        if k < 1:
            raise ValueError(f"k={k} must be at least 1")
        inputs: dict[str, np.ndarray] = {features.INPUT_USER_ID: users}
        recommender = model == features.MODEL_RECOMMENDER
        if recommender:
            inputs.update(recommender_inputs(len(users), k, mmr_lambda, exclude))
        elif exclude is not None or mmr_lambda:
            raise ValueError(
                f"exclude and mmr_lambda need the {features.MODEL_RECOMMENDER!r} model, not "
                f"{model!r}"
            )
        outputs = self.predict(model, inputs)
        item_ids, scores = _required_outputs(model, outputs, len(users))
        titles = outputs.get(features.OUTPUT_TITLES)
        if titles is not None and titles.shape != item_ids.shape:
            raise ValueError(
                f"model {model!r} returned {features.OUTPUT_TITLES!r} of shape "
                f"{titles.shape} but {features.OUTPUT_ITEM_IDS!r} of shape {item_ids.shape}; "
                "re-export the model"
            )
        if not recommender and k > item_ids.shape[1]:
            raise ValueError(
                f"k={k} exceeds the {item_ids.shape[1]} items model {model!r} returns per "
                "user; lower k or re-export the model with a larger k"
            )
        return [
            [
                Recommendation(
                    item_id=_text(item_ids[row, col]),
                    title="" if titles is None else _text(titles[row, col]),
                    score=float(scores[row, col]),
                )
                for col in range(min(k, item_ids.shape[1]))
                if _text(item_ids[row, col])  # "" pads lists the recommender could not fill
            ]
            for row in range(len(users))
        ]

    def rank(
        self,
        user_ids: Sequence[str],
        item_ids: Sequence[Sequence[str]],
        model: str = features.MODEL_RANKING,
    ) -> list[list[Recommendation]]:
        """Scores each user's candidate items with the ranking model; best first.

        Args:
          user_ids: Users, batch `[len(user_ids)]`.
          item_ids: Per user, the candidates to score (lists may differ in length).

        Returns:
          Per user, its candidates as recommendations sorted by score (highest first).

        Raises:
          ValueError: `item_ids` does not have one list per user.
          grpc.RpcError: The server refused or failed the request.
        """
        users = _user_batch(user_ids)
        candidates = _padded(item_ids, len(users), "item_ids")
        outputs = self.predict(model, {features.INPUT_USER_ID: users,
                                       features.INPUT_ITEM_IDS: candidates})  # fmt: skip
        scores = outputs[features.OUTPUT_SCORES]
        titles = outputs.get(features.OUTPUT_TITLES)
        ranked = []
        for row, items in enumerate(item_ids):
            recs = [
                Recommendation(
                    str(item),
                    "" if titles is None else _text(titles[row, col]),
                    float(scores[row, col]),
                )  # fmt: skip
                for col, item in enumerate(items)
            ]
            ranked.append(sorted(recs, key=lambda r: -r.score))
        return ranked

    def metadata(self, model: str, version: int | None = None) -> dict[str, Any]:
        """Returns the model's SignatureDefs (`tensorflow.SignatureDef` protos) by name.

        Each has `inputs` and `outputs` maps of name -> TensorInfo (`dtype`, `tensor_shape`).

        Raises:
          grpc.RpcError: E.g. NOT_FOUND for an unknown model.
        """
        request = get_model_metadata_pb2.GetModelMetadataRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        request.metadata_field.append(_SIGNATURE_DEF_FIELD)
        response = self._predictions.GetModelMetadata(request, timeout=self._timeout_s)
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        if not response.metadata[_SIGNATURE_DEF_FIELD].Unpack(signature_map):
            raise ValueError(
                f"{self._target} answered GetModelMetadata for {model!r} without a "
                "SignatureDefMap; is it a TensorFlow Serving endpoint?"
            )
        return dict(signature_map.signature_def)

    def status(self, model: str, version: int | None = None) -> dict[int, str]:
        """Returns the state of each version of `model` the server knows, e.g. {2: "AVAILABLE"}.

        States are TF Serving's: START, LOADING, AVAILABLE, UNLOADING, END.

        Raises:
          grpc.RpcError: NOT_FOUND when the server has no version of `model`.
        """
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        response = self._models.GetModelStatus(request, timeout=self._timeout_s)
        state_name = get_model_status_pb2.ModelVersionStatus.State.Name
        return {s.version: state_name(s.state) for s in response.model_version_status}

    def wait_until_ready(self, timeout_s: float, model: str | None = None) -> None:
        """Blocks until the server reports SERVING (for `model`, when given).

        Uses the gRPC health service (`grpc.health.v1`; service "" or the model name). Real
        `tensorflow_model_server` has no health service (tensorflow/serving#671): when the
        server answers UNIMPLEMENTED, readiness is `model` having an AVAILABLE version, which
        then must be given.

        Raises:
          TimeoutError: Not ready within `timeout_s` seconds (the message has the last reason).
          ValueError: The server has no health service and `model` is None.
        """
        deadline = time.monotonic() + timeout_s
        reason = "no answer yet"
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"{self._target} not ready after {timeout_s} s ({reason}); is the server "
                    "running there and has it loaded the models?"
                )
            ready, reason = self._readiness(model, min(remaining, self._timeout_s))
            if ready:
                return
            time.sleep(min(_POLL_SECONDS, max(deadline - time.monotonic(), 0)))

    def close(self) -> None:
        """Closes the channel; the client cannot be used afterwards."""
        self._channel.close()

    def __enter__(self) -> ServingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _readiness(self, model: str | None, timeout_s: float) -> tuple[bool, str]:
        """One readiness probe: (ready, reason when not)."""
        request = health_pb2.HealthCheckRequest(service=model or "")
        try:
            response = self._health.Check(request, timeout=timeout_s)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNIMPLEMENTED:
                return False, f"health check: {e.code().name}: {e.details()}"
            return self._model_available(model, timeout_s)
        serving = response.status == health_pb2.HealthCheckResponse.SERVING
        return (
            serving,
            f"health {health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)}",
        )

    def _model_available(self, model: str | None, timeout_s: float) -> tuple[bool, str]:
        if model is None:
            raise ValueError(
                f"{self._target} has no gRPC health service (real TensorFlow Serving has "
                "none); pass model=... to wait for that model's version to become AVAILABLE"
            )
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = model
        try:
            response = self._models.GetModelStatus(request, timeout=timeout_s)
        except grpc.RpcError as e:
            return False, f"model status: {e.code().name}: {e.details()}"
        available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        ready = any(s.state == available for s in response.model_version_status)
        return ready, f"model {model!r} has no AVAILABLE version"


def recommender_inputs(
    batch: int, k: int, mmr_lambda: float = 0.0, exclude: Sequence[Sequence[str]] | None = None
) -> dict[str, np.ndarray]:
    """The `recommender` signature's inputs besides `user_id`, for `batch` users alike: `k`
    int32 `[batch]`, `mmr_lambda` float32 `[batch]`, `exclude_item_ids` string `[batch, m]`
    ("" padded)."""
    return {
        features.INPUT_K: np.full(batch, k, np.int32),
        features.INPUT_MMR_LAMBDA: np.full(batch, mmr_lambda, np.float32),
        features.INPUT_EXCLUDE_ITEM_IDS: _padded(exclude or [[]] * batch, batch, "exclude"),
    }


def _user_batch(user_ids: Sequence[str]) -> np.ndarray:
    if isinstance(user_ids, str | bytes):
        raise TypeError(f"user_ids={user_ids!r} is one string; pass a list, e.g. [{user_ids!r}]")
    if not user_ids:
        raise ValueError("user_ids is empty; pass at least one user id")
    return np.array([str(u) for u in user_ids], dtype=object)


def _padded(lists: Sequence[Sequence[str]], batch: int, name: str) -> np.ndarray:
    """Per-user id lists as a string `[batch, max(1, longest)]` array padded with ""."""
    if len(lists) != batch:
        raise ValueError(f"{name} has {len(lists)} lists for {batch} user(s); pass one per user")
    # At least one column: TF Serving's batching cannot merge an empty [batch, 0] tensor with
    # non-empty ones ("Got empty tensor in batch of non-empty tensors").
    width = max(1, max((len(ids) for ids in lists), default=0))
    array = np.full((batch, width), "", dtype=object)
    for row, ids in enumerate(lists):
        if isinstance(ids, str | bytes):
            raise TypeError(f"{name}[{row}]={ids!r} is one string; pass a list of ids")
        array[row, : len(ids)] = [str(i) for i in ids]
    return array


def _as_array(values: Any) -> np.ndarray:
    """`values` as an array TensorFlow converts exactly (str -> DT_STRING, not unicode)."""
    array = np.asarray(values)
    if array.dtype.kind == "U":
        array = array.astype(object)
    return array


def _required_outputs(
    model: str, outputs: Mapping[str, np.ndarray], batch: int
) -> tuple[np.ndarray, np.ndarray]:
    """The item ids and scores of a recommendation response, shape-checked `[batch, k]`."""
    missing = [n for n in (features.OUTPUT_ITEM_IDS, features.OUTPUT_SCORES) if n not in outputs]
    if missing:
        raise ValueError(
            f"model {model!r} returned outputs {sorted(outputs)} without {missing}; recommend() "
            "needs a model exported with the recommendation signature (e.g. "
            f"{features.MODEL_RETRIEVAL!r})"
        )
    item_ids = outputs[features.OUTPUT_ITEM_IDS]
    scores = outputs[features.OUTPUT_SCORES]
    if item_ids.ndim != 2 or item_ids.shape[0] != batch or scores.shape != item_ids.shape:
        raise ValueError(
            f"model {model!r} returned {features.OUTPUT_ITEM_IDS!r} of shape {item_ids.shape} "
            f"and {features.OUTPUT_SCORES!r} of shape {scores.shape}; expected both "
            f"[{batch}, k] for {batch} user(s)"
        )
    return item_ids, scores


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
