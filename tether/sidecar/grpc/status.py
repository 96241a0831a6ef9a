"""An :class:`~tether.platform.errors.ApiError` as the gRPC status Dapr answers with.

Dapr gives each error an HTTP status and a gRPC code (``pkg/messages/predefined.go``,
``pkg/api/errors``); they mostly follow each other, and where they don't (a store that is
not configured is HTTP 500 but gRPC FAILED_PRECONDITION; an unknown pub/sub is 404 but
INVALID_ARGUMENT) the ERR_ code decides. The message is the same text HTTP answers.
"""

from __future__ import annotations

import grpc

from tether.platform import errors
from tether.platform.errors import ApiError

#: codes whose gRPC status differs from what their HTTP status would give
_BY_CODE: dict[str, grpc.StatusCode] = {
    errors.STATE_STORE_NOT_CONFIGURED: grpc.StatusCode.FAILED_PRECONDITION,
    errors.SECRET_STORES_NOT_CONFIGURED: grpc.StatusCode.FAILED_PRECONDITION,
    errors.LOCK_STORE_NOT_CONFIGURED: grpc.StatusCode.FAILED_PRECONDITION,
    errors.CONFIGURATION_STORE_NOT_CONFIGURED: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PUBSUB_NOT_CONFIGURED: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PUBSUB_EMPTY: grpc.StatusCode.INVALID_ARGUMENT,
    errors.PUBSUB_NOT_FOUND: grpc.StatusCode.INVALID_ARGUMENT,
    errors.TOPIC_EMPTY: grpc.StatusCode.INVALID_ARGUMENT,
    errors.SECRET_STORE_NOT_FOUND: grpc.StatusCode.INVALID_ARGUMENT,
}

_BY_STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    # an ETag conflict: Dapr answers Aborted (the caller may read again and retry)
    409: grpc.StatusCode.ABORTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def status_code(exc: ApiError) -> grpc.StatusCode:
    """The gRPC code Dapr answers ``exc`` with."""
    found = _BY_CODE.get(exc.code)
    if found is not None:
        return found
    return _BY_STATUS.get(exc.status, grpc.StatusCode.INTERNAL)
