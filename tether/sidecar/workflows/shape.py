"""What the workflow HTTP API reads and answers, in Dapr's shapes.

``GET /v1.0/workflows/dapr/{instanceID}`` answers Dapr's ``GetWorkflowResponse`` as
protojson writes it: ``instanceID``, ``workflowName``, ``createdAt``, ``lastUpdatedAt``
(RFC 3339, UTC, ``Z``), ``runtimeStatus`` and ``properties`` (strings only) with the
``dapr.workflow.*`` keys. Instance ids are checked as Dapr checks them on start
(``pkg/api/universal/workflow.go``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Protocol

from tether.platform import errors
from tether.platform.errors import ApiError

#: Dapr's limit (bytes), so ids fit the key limits of every state store
MAX_INSTANCE_ID_LENGTH = 64

INPUT = "dapr.workflow.input"
OUTPUT = "dapr.workflow.output"
CUSTOM_STATUS = "dapr.workflow.custom_status"
FAILURE_TYPE = "dapr.workflow.failure.error_type"
FAILURE_MESSAGE = "dapr.workflow.failure.error_message"
FAILURE_STACK = "dapr.workflow.failure.stack_trace"


class Failure(Protocol):
    @property
    def error_type(self) -> str: ...
    @property
    def message(self) -> str: ...
    @property
    def stack_trace(self) -> str | None: ...


class State(Protocol):
    """The fields of the runtime's ``WorkflowState`` this module reads."""

    @property
    def instance_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def runtime_status(self) -> str: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def last_updated_at(self) -> datetime: ...
    @property
    def serialized_input(self) -> str | None: ...
    @property
    def serialized_output(self) -> str | None: ...
    @property
    def serialized_custom_status(self) -> str | None: ...
    @property
    def failure_details(self) -> Failure | None: ...


def timestamp(value: datetime) -> str:
    """protojson's Timestamp text: UTC, ``Z``, and 0, 3 or 6 fraction digits."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    micros = value.microsecond
    if micros == 0:
        return base + "Z"
    if micros % 1000 == 0:
        return f"{base}.{micros // 1000:03d}Z"
    return f"{base}.{micros:06d}Z"


def properties(state: State) -> dict[str, str]:
    """The ``dapr.workflow.*`` properties: input and custom status always (empty when
    unset, as Dapr's examples show), output only without a failure, failure details only
    on a failure."""
    props = {
        CUSTOM_STATUS: state.serialized_custom_status or "",
        INPUT: state.serialized_input or "",
    }
    failure = state.failure_details
    if failure is None:
        if state.serialized_output is not None:
            props[OUTPUT] = state.serialized_output
    else:
        props[FAILURE_TYPE] = failure.error_type
        props[FAILURE_MESSAGE] = failure.message
        if failure.stack_trace is not None:
            props[FAILURE_STACK] = failure.stack_trace
    return props


def state_body(state: State) -> dict[str, Any]:
    """Dapr's GET answer for one instance."""
    return {
        "instanceID": state.instance_id,
        "workflowName": state.name,
        "createdAt": timestamp(state.created_at),
        "lastUpdatedAt": timestamp(state.last_updated_at),
        "runtimeStatus": str(state.runtime_status),
        "properties": properties(state),
    }


def check_new_instance_id(instance_id: str) -> None:
    """Dapr's checks for an id a start request gives: length, then characters."""
    if len(instance_id.encode()) > MAX_INSTANCE_ID_LENGTH:
        raise ApiError(400, errors.INSTANCE_ID_TOO_LONG,
                       "workflow instance ID exceeds the max length of "
                       f"{MAX_INSTANCE_ID_LENGTH} characters")
    if not all(c.isalpha() or c.isdigit() or c in "_-" for c in instance_id):
        raise ApiError(400, errors.INSTANCE_ID_INVALID,
                       f"workflow instance ID '{instance_id}' is invalid: only alphanumeric "
                       "and underscore characters are allowed")


def require_instance_id(instance_id: str) -> None:
    if not instance_id:
        raise ApiError(400, errors.INSTANCE_ID_PROVIDED_MISSING, "no instance ID was provided")


def not_found(instance_id: str) -> ApiError:
    return ApiError(404, errors.INSTANCE_ID_NOT_FOUND,
                    f"unable to find workflow with the provided instance ID: {instance_id}")


def json_payload(raw: bytes, what: str) -> Any:
    """A request body as the JSON value it holds (empty: None). The engine keeps inputs and
    events as JSON, so a body that is not JSON is refused here rather than failing the
    instance later."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise ApiError(400, errors.MALFORMED_REQUEST,
                       f"{what} must be JSON: {exc}") from None
