"""The roots of every error Tether raises, and Dapr's API error codes.

:class:`TetherError` is the base of every exception the package raises on purpose (a
configuration mistake, a broker, store or API failure); :class:`ConfigError` is the base of
every mistake found while loading or checking configuration (component YAML, URLs, run
files), so a caller can stop with one ``except``. :class:`ApiError` is a call failing with
Dapr's error shape ``{"errorCode": "ERR_...", "message": "..."}`` and its status; every front
end (HTTP, gRPC) renders the same error, so the blocks raise it without knowing which.
"""

from __future__ import annotations

from typing import Any


class TetherError(Exception):
    """The base of every error Tether raises."""


class ConfigError(TetherError, ValueError):
    """Configuration that cannot work (a component, URL, option or file); the message names
    it. Raised at load time, before anything starts."""


class ApiError(TetherError):
    """An API call that fails with a Dapr-shaped error; the blocks raise it and the front
    end answers it (HTTP: the status and JSON body)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"errorCode": code, "message": message}


# service invocation: 500 for an unknown app or a failed call (Dapr's status), 504 when the
# caller's deadline passes, 400 for a call without an app id or method
DIRECT_INVOKE = "ERR_DIRECT_INVOKE"

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
BODY_TOO_LARGE = "ERR_BODY_TOO_LARGE"  # 413, also a metadata value over its limit
METADATA_SET = "ERR_METADATA_SET"  # 400: a value that is not UTF-8, or one key too many
# Dapr answers these in plain text ("invalid api token", "404 page not found"); Tether in its
# error shape with codes of its own (docs/security.md, docs/http-api.md)
API_TOKEN_INVALID = "ERR_API_TOKEN_INVALID"  # 401: dapr-api-token missing or wrong
NOT_FOUND = "ERR_NOT_FOUND"  # 404: no route for the path
METHOD_NOT_ALLOWED = "ERR_METHOD_NOT_ALLOWED"  # 405: the path has no route for the method
# tether run --api-processes N: an API process could not reach the main one (it is stopping)
MAIN_PROCESS_UNREACHABLE = "ERR_MAIN_PROCESS_UNREACHABLE"  # 503
# the secrets API (pkg/messages/predefined.go)
SECRET_STORES_NOT_CONFIGURED = "ERR_SECRET_STORES_NOT_CONFIGURED"  # 500
SECRET_STORE_NOT_FOUND = "ERR_SECRET_STORE_NOT_FOUND"  # 401 (sic, as Dapr)
PERMISSION_DENIED = "ERR_PERMISSION_DENIED"  # 403: denied by the app's secret scopes
SECRET_GET = "ERR_SECRET_GET"  # 500; Tether answers 404 for an unknown secret name
# the state API's codes (pkg/api/errors/state.go, pkg/messages/errorcodes); docs/state.md
MALFORMED_REQUEST = "ERR_MALFORMED_REQUEST"  # 400
STATE_STORE_NOT_CONFIGURED = "ERR_STATE_STORE_NOT_CONFIGURED"  # 500 (FailedPrecondition)
STATE_STORE_NOT_FOUND = "ERR_STATE_STORE_NOT_FOUND"  # 400
STATE_STORE_NOT_SUPPORTED = "ERR_STATE_STORE_NOT_SUPPORTED"  # 500: no transactions / query
STATE_GET = "ERR_STATE_GET"  # 500
STATE_BULK_GET = "ERR_STATE_BULK_GET"  # 500
STATE_SAVE = "ERR_STATE_SAVE"  # 409 etag mismatch, 400 invalid etag, else 500
STATE_DELETE = "ERR_STATE_DELETE"  # 409 etag mismatch, 400 invalid etag, else 500
STATE_TRANSACTION = "ERR_STATE_TRANSACTION"  # 500 in Dapr; Tether: 409 on an etag conflict
STATE_QUERY = "ERR_STATE_QUERY"  # 500; Tether: 400 for a query the store cannot parse
NOT_SUPPORTED_STATE_OPERATION = "ERR_NOT_SUPPORTED_STATE_OPERATION"  # 400
PUBSUB_OUTBOX = "ERR_PUBLISH_OUTBOX"  # 500: the outbox records could not be built
# distributed lock (pkg/messages/predefined.go); Dapr answers ERR_MALFORMED_REQUEST (above)
# for an unreadable body, a missing resourceId / lockOwner and a non-positive expiry
LOCK_STORE_NOT_CONFIGURED = "ERR_LOCK_STORE_NOT_CONFIGURED"  # 500
LOCK_STORE_NOT_FOUND = "ERR_LOCK_STORE_NOT_FOUND"  # 400
TRY_LOCK = "ERR_TRY_LOCK"  # 500, also a resourceId containing "||"
UNLOCK = "ERR_UNLOCK"  # 500
# configuration (pkg/api/http/http.go)
CONFIGURATION_STORE_NOT_CONFIGURED = "ERR_CONFIGURATION_STORE_NOT_CONFIGURED"  # 500
CONFIGURATION_STORE_NOT_FOUND = "ERR_CONFIGURATION_STORE_NOT_FOUND"  # 400
CONFIGURATION_GET = "ERR_CONFIGURATION_GET"  # 500
CONFIGURATION_SUBSCRIBE = "ERR_CONFIGURATION_SUBSCRIBE"  # 500
APP_CHANNEL_NIL = "ERR_APP_CHANNEL_NIL"  # 500: subscribe without an app port
# workflows (pkg/messages/predefined.go); Tether adds 409 for a duplicate running instance id
WORKFLOW_COMPONENT_NOT_FOUND = "ERR_WORKFLOW_COMPONENT_NOT_FOUND"  # 400
WORKFLOW_NAME_MISSING = "ERR_WORKFLOW_NAME_MISSING"  # 400
WORKFLOW_EVENT_NAME_MISSING = "ERR_WORKFLOW_EVENT_NAME_MISSING"  # 400
INSTANCE_ID_PROVIDED_MISSING = "ERR_INSTANCE_ID_PROVIDED_MISSING"  # 400
INSTANCE_ID_INVALID = "ERR_INSTANCE_ID_INVALID"  # 400
INSTANCE_ID_TOO_LONG = "ERR_INSTANCE_ID_TOO_LONG"  # 400
INSTANCE_ID_NOT_FOUND = "ERR_INSTANCE_ID_NOT_FOUND"  # 404
START_WORKFLOW = "ERR_START_WORKFLOW"  # 500; Tether: 409 duplicate id, 400 unregistered name
GET_WORKFLOW = "ERR_GET_WORKFLOW"  # 500
TERMINATE_WORKFLOW = "ERR_TERMINATE_WORKFLOW"  # 500
RAISE_EVENT_WORKFLOW = "ERR_RAISE_EVENT_WORKFLOW"  # 500
PAUSE_WORKFLOW = "ERR_PAUSE_WORKFLOW"  # 500
RESUME_WORKFLOW = "ERR_RESUME_WORKFLOW"  # 500
PURGE_WORKFLOW = "ERR_PURGE_WORKFLOW"  # 500; Tether: 409 for an unfinished instance
# bindings: 500 in Dapr; Tether answers 404 for an unknown binding, 400 for a bad request
INVOKE_OUTPUT_BINDING = "ERR_INVOKE_OUTPUT_BINDING"
LIST_WORKFLOWS = "ERR_LIST_WORKFLOWS"  # Tether's own (the instance list): 501 without query
# the Jobs API (pkg/messages/errorcodes: Dapr's scheduler codes carry no ERR_ prefix)
SCHEDULER_EMPTY = "DAPR_SCHEDULER_EMPTY"  # 400: no body
SCHEDULER_JOB_NAME = "DAPR_SCHEDULER_JOB_NAME"  # 400: a name in the body as well as the URL
SCHEDULER_JOB_NAME_EMPTY = "DAPR_SCHEDULER_JOB_NAME_EMPTY"  # 400
SCHEDULER_SCHEDULE_EMPTY = "DAPR_SCHEDULER_SCHEDULE_EMPTY"  # 400: neither schedule nor dueTime
# 500 in Dapr for a bad schedule, 409 when the job exists; Tether: 400 and 409
SCHEDULER_SCHEDULE_JOB = "DAPR_SCHEDULER_SCHEDULE_JOB"
SCHEDULER_GET_JOB = "DAPR_SCHEDULER_GET_JOB"  # 500 in Dapr for an unknown job; Tether: 404
SCHEDULER_DELETE_JOB = "DAPR_SCHEDULER_DELETE_JOB"  # 500
SCHEDULER_LIST_JOBS = "DAPR_SCHEDULER_LIST_JOBS"  # 500
