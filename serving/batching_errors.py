"""The errors of `serving.batching.Batcher`, each carrying the gRPC status to answer with.

`BatchingError.code` is the status a server should turn the error into: UNAVAILABLE for a
full queue or a closed batcher (retry later), INVALID_ARGUMENT for a request that cannot be
batched, FAILED_PRECONDITION for model outputs that cannot be split per request.
"""

from __future__ import annotations

import grpc

__all__ = [
    "BatchInputError",
    "BatchOutputError",
    "BatchQueueFullError",
    "BatcherClosedError",
    "BatchingError",
]


class BatchingError(Exception):
    """An error of the batcher itself; `code` is the gRPC status the server should answer."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class BatchQueueFullError(BatchingError):
    """`max_enqueued_batches` batches already wait for a thread (TF Serving: UNAVAILABLE)."""

    code = grpc.StatusCode.UNAVAILABLE


class BatcherClosedError(BatchingError):
    """`submit` after `close()`: the server is shutting down (UNAVAILABLE)."""

    code = grpc.StatusCode.UNAVAILABLE


class BatchInputError(BatchingError, ValueError):
    """The request's inputs cannot be batched: too many rows, no batch dim (INVALID_ARGUMENT)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class BatchOutputError(BatchingError):
    """The model's outputs cannot be split per request (TF Serving: FAILED_PRECONDITION)."""

    code = grpc.StatusCode.FAILED_PRECONDITION
