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
from serving.client_inputs import (
    as_array,
    padded,
    recommender_inputs,
    required_outputs,
    retry_service_config,
    text,
    user_batch,
)

logger = logging.getLogger(__name__)

_SIGNATURE_DEF_FIELD = "signature_def"
_POLL_SECONDS = 0.2


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
            request.inputs[name].CopyFrom(tf.make_tensor_proto(as_array(values)))
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
        users = user_batch(user_ids)
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
        item_ids, scores = required_outputs(model, outputs, len(users))
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
                    item_id=text(item_ids[row, col]),
                    title="" if titles is None else text(titles[row, col]),
                    score=float(scores[row, col]),
                )
                for col in range(min(k, item_ids.shape[1]))
                if text(item_ids[row, col])  # "" pads lists the recommender could not fill
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
        users = user_batch(user_ids)
        candidates = padded(item_ids, len(users), "item_ids")
        outputs = self.predict(model, {features.INPUT_USER_ID: users,
                                       features.INPUT_ITEM_IDS: candidates})  # fmt: skip
        scores = outputs[features.OUTPUT_SCORES]
        titles = outputs.get(features.OUTPUT_TITLES)
        ranked = []
        for row, items in enumerate(item_ids):
            recs = [
                Recommendation(
                    str(item),
                    "" if titles is None else text(titles[row, col]),
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
