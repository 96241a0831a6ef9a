"""Dapr's HTTP error shape: ``{"errorCode": "ERR_...", "message": "..."}`` with a status."""

from __future__ import annotations

from typing import Any

from aiohttp import web

# the codes (and statuses) Dapr answers with on the pub/sub API (pkg/api/errors/pubsub.go)
PUBSUB_NOT_CONFIGURED = "ERR_PUBSUB_NOT_CONFIGURED"  # 400
PUBSUB_EMPTY = "ERR_PUBSUB_EMPTY"  # 404
PUBSUB_NOT_FOUND = "ERR_PUBSUB_NOT_FOUND"  # 404
TOPIC_EMPTY = "ERR_TOPIC_EMPTY"  # 404
PUBSUB_FORBIDDEN = "ERR_PUBSUB_FORBIDDEN"  # 403
PUBSUB_CLOUD_EVENTS_SER = "ERR_PUBSUB_CLOUD_EVENTS_SER"  # 500 in Dapr, see docs/http-api.md
PUBSUB_EVENTS_SER = "ERR_PUBSUB_EVENTS_SER"  # 400: a bulk body that cannot be read
PUBSUB_REQUEST_METADATA = "ERR_PUBSUB_REQUEST_METADATA"  # 400
PUBSUB_PUBLISH_MESSAGE = "ERR_PUBSUB_PUBLISH_MESSAGE"  # 500
# Tether's own: Dapr's HTTP server answers an oversized body without a JSON error
BODY_TOO_LARGE = "ERR_BODY_TOO_LARGE"  # 413
METADATA_SET = "ERR_METADATA_SET"  # 400


class ApiError(Exception):
    """An API call that fails with a Dapr-shaped error; handlers raise it, the app's
    middleware turns it into the response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        return error_response(self.status, self.code, self.message)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"errorCode": code, "message": message}


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response(error_body(code, message), status=status)
