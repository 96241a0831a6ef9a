"""The workflow management operations behind Dapr's workflow API, for any front end (the
sidecar's HTTP routes are ``tether.sidecar.workflows``; docs/workflows.md, "HTTP API and
CLI").

Dapr's operations (start, get, raise an event, terminate, pause, resume, purge) and
Tether's own reads (the instance list and one instance's history), each with Dapr's checks
in Dapr's order. Every call goes through the runtime's workflow client on the broker and
state store that ``backend`` picks; workers (``WorkflowRuntime``, in the app or ``tether
worker``) run the instances. Errors are ApiErrors with Dapr's codes; where Dapr answers 500
for the caller's mistake, Tether answers 4xx (409 for a duplicate running id and for purging
an unfinished instance, 400 for a workflow name no running worker registered, 404 for an
unknown id). Instance ids are checked as Dapr checks them on start
(``pkg/api/universal/workflow.go``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from tether.platform import errors
from tether.platform.blocks import BlockContext
from tether.platform.errors import ApiError
from tether.platform.json_body import JsonBodyError, read_json
from tether.platform.state.store import InvalidQueryError, Query, QueryNotSupportedError
from tether.platform.workflows import payload
from tether.platform.workflows.durable.backend import choose_backend, open_backend
from tether.platform.workflows.durable.client import AsyncWorkflowClient, WorkflowState
from tether.platform.workflows.durable.config import Connection
from tether.platform.workflows.durable.errors import (
    WorkflowAlreadyExistsError,
    WorkflowNotFinishedError,
    WorkflowNotFoundError,
    WorkflowNotRegisteredError,
)
from tether.platform.workflows.durable.instances import InstanceMeta
from tether.platform.workflows.history import HistoryEvent, RuntimeStatus

log = logging.getLogger(__name__)

#: the one workflow component, Dapr's built-in engine's name
COMPONENT = "dapr"
#: Dapr's limit (bytes), so ids fit the key limits of every state store
MAX_INSTANCE_ID_LENGTH = 64


@dataclass(frozen=True, slots=True)
class InstancePage:
    """One page of the instance list, newest first; ``token`` (None: none) asks for the
    next."""

    instances: list[InstanceMeta]
    token: str | None


class WorkflowService:
    """The workflow block: its operations, and the client connection opened on first use
    (the component choice is checked when it is built: BlockConfigError)."""

    def __init__(self, context: BlockContext) -> None:
        self._backend = choose_backend(context.components)
        self._context = context
        self._opened: tuple[AsyncWorkflowClient, Connection] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Nothing to open yet: the broker and store open on the first workflow call."""
        return None

    async def close(self) -> None:
        opened, self._opened = self._opened, None
        if opened is not None:
            await opened[1].close()

    async def _connected(self, code: str) -> tuple[AsyncWorkflowClient, Connection]:
        """The client and its connection; a broker or store that cannot be opened is a 500
        with the operation's ``code`` (the next call tries again)."""
        if self._opened is not None:
            return self._opened
        async with self._lock:
            if self._opened is None:
                try:
                    conn = await open_backend(self._backend, self._context)
                except Exception as exc:
                    raise _failed(500, code, "cannot open the workflow broker or state "
                                  f"store: {exc}", exc) from exc
                self._opened = AsyncWorkflowClient(connection=conn,
                                                   app_id=self._context.app_id), conn
            return self._opened

    # --- Dapr's operations -------------------------------------------------------------------
    async def start_workflow(self, component: str, name: str, instance_id: str | None,
                             input_json: bytes, trace: Mapping[str, str] | None = None) -> str:
        """Start an instance of ``name`` with the JSON input ``input_json`` (empty: none);
        returns its id (a new UUID when ``instance_id`` is None or empty). ``trace``: the
        call's W3C context, which the instance continues."""
        _check_component(component)
        instance_id = instance_id or str(uuid.uuid4())
        _check_new_instance_id(instance_id)
        if not name:
            raise ApiError(400, errors.WORKFLOW_NAME_MISSING, "workflow name is not configured")
        data = _json_payload(input_json, "the workflow input")
        client, _ = await self._connected(errors.START_WORKFLOW)
        what = f"error starting workflow '{name}'"
        try:
            await client.schedule_new_workflow(name, input=data, instance_id=instance_id,
                                               trace=trace)
        except WorkflowAlreadyExistsError as exc:
            raise _failed(409, errors.START_WORKFLOW, f"{what}: {exc}", exc) from exc
        except WorkflowNotRegisteredError as exc:
            raise _failed(400, errors.START_WORKFLOW, f"{what}: {exc}", exc) from exc
        except Exception as exc:
            raise _failed(500, errors.START_WORKFLOW, f"{what}: {exc}", exc) from exc
        return instance_id

    async def get_workflow(self, component: str, instance_id: str) -> WorkflowState:
        """The instance's state, payloads included."""
        _check_instance(component, instance_id)
        client, _ = await self._connected(errors.GET_WORKFLOW)
        try:
            state = await client.get_workflow_state(instance_id, fetch_payloads=True)
        except Exception as exc:
            raise _failed(500, errors.GET_WORKFLOW, "error while getting workflow info on "
                          f"instance '{instance_id}': {exc}", exc) from exc
        if state is None:
            raise _not_found(instance_id)
        return state

    async def raise_event(self, component: str, instance_id: str, event: str,
                          data_json: bytes) -> None:
        """Send the event ``event`` with the JSON data ``data_json`` (empty: none)."""
        _check_instance(component, instance_id)
        if not event:
            raise ApiError(400, errors.WORKFLOW_EVENT_NAME_MISSING, "missing workflow event name")
        data = _json_payload(data_json, "the event data")
        client, _ = await self._connected(errors.RAISE_EVENT_WORKFLOW)
        await _act(client.raise_workflow_event(instance_id, event, data=data), instance_id,
                   errors.RAISE_EVENT_WORKFLOW, f"error raising event on workflow '{instance_id}'")

    async def terminate_workflow(self, component: str, instance_id: str) -> None:
        _check_instance(component, instance_id)
        client, _ = await self._connected(errors.TERMINATE_WORKFLOW)
        # recursive, as Dapr's API: running child workflows are terminated too
        await _act(client.terminate_workflow(instance_id, recursive=True), instance_id,
                   errors.TERMINATE_WORKFLOW, f"error terminating workflow '{instance_id}'")

    async def pause_workflow(self, component: str, instance_id: str) -> None:
        _check_instance(component, instance_id)
        client, _ = await self._connected(errors.PAUSE_WORKFLOW)
        await _act(client.pause_workflow(instance_id), instance_id, errors.PAUSE_WORKFLOW,
                   f"error pausing workflow {instance_id}")

    async def resume_workflow(self, component: str, instance_id: str) -> None:
        _check_instance(component, instance_id)
        client, _ = await self._connected(errors.RESUME_WORKFLOW)
        await _act(client.resume_workflow(instance_id), instance_id, errors.RESUME_WORKFLOW,
                   f"error resuming workflow {instance_id}")

    async def purge_workflow(self, component: str, instance_id: str) -> None:
        """Delete a finished instance and its children (409 if it has not finished)."""
        _check_instance(component, instance_id)
        client, _ = await self._connected(errors.PURGE_WORKFLOW)
        what = f"error purging workflow {instance_id}"
        try:
            purged = await client.purge_workflow(instance_id, recursive=True)
        except WorkflowNotFinishedError as exc:
            raise _failed(409, errors.PURGE_WORKFLOW, f"{what}: {exc}", exc) from exc
        except Exception as exc:
            raise _failed(500, errors.PURGE_WORKFLOW, f"{what}: {exc}", exc) from exc
        if not purged:
            raise _not_found(instance_id)

    # --- Tether's own reads ------------------------------------------------------------------
    async def list_instances(self, statuses: Collection[RuntimeStatus], name: str | None,
                             limit: int, token: str | None) -> InstancePage:
        """The instances with one of ``statuses`` (and the workflow ``name``, if given),
        newest first, ``limit`` at most, from the page ``token`` names. It reads the
        metadata records with the state store's query API (SQLite, PostgreSQL and the
        in-memory store have it; without it: 501)."""
        conds: list[dict[str, Any]] = [{"IN": {"status": [s.value for s in statuses]}}]
        if name:
            conds.append({"EQ": {"name": name}})
        _, conn = await self._connected(errors.LIST_WORKFLOWS)
        # metadata records only: history chunks under the same prefix have no status field
        query = Query(filter={"AND": conds} if len(conds) > 1 else conds[0],
                      sort=[{"key": "created_at", "order": "DESC"}], limit=limit, token=token,
                      key_prefix=f"{conn.names.namespace}||instance||")
        try:
            result = await conn.store.query(query)
        except InvalidQueryError as exc:  # our query is valid: the token is not
            raise ApiError(400, errors.MALFORMED_REQUEST, f"continuationToken {token!r} is "
                           "not one this API returned") from exc
        except QueryNotSupportedError as exc:
            raise ApiError(501, errors.LIST_WORKFLOWS, "listing workflow instances needs a "
                           f"state store with the query API: {exc}") from exc
        except Exception as exc:
            raise ApiError(500, errors.LIST_WORKFLOWS,
                           f"error listing workflow instances: {exc}") from exc
        metas = [InstanceMeta.from_json(i.value) for i in result.items
                 if i.key.endswith("||meta")]
        return InstancePage(metas, result.token)

    async def get_history(self, instance_id: str) -> list[HistoryEvent]:
        """The stored history of the instance's current generation."""
        _require_instance_id(instance_id)
        client, _ = await self._connected(errors.GET_WORKFLOW)
        try:
            return await client.get_workflow_history(instance_id)
        except WorkflowNotFoundError as exc:
            raise _not_found(instance_id) from exc
        except Exception as exc:
            raise ApiError(500, errors.GET_WORKFLOW, "error while getting the history of "
                           f"instance '{instance_id}': {exc}") from exc


def _failed(status: int, code: str, message: str, exc: BaseException) -> ApiError:
    if status >= 500:
        log.warning("workflow API: %s", message, exc_info=exc)
    return ApiError(status, code, message)


def _check_component(component: str) -> None:
    if component != COMPONENT:
        raise ApiError(400, errors.WORKFLOW_COMPONENT_NOT_FOUND,
                       f"workflow component '{component}' does not exist")


def _check_instance(component: str, instance_id: str) -> None:
    """The checks of every call on an existing instance, in Dapr's order."""
    _check_component(component)
    _require_instance_id(instance_id)


def _check_new_instance_id(instance_id: str) -> None:
    """Dapr's checks for an id a start request gives: length, then characters."""
    if len(instance_id.encode()) > MAX_INSTANCE_ID_LENGTH:
        raise ApiError(400, errors.INSTANCE_ID_TOO_LONG,
                       "workflow instance ID exceeds the max length of "
                       f"{MAX_INSTANCE_ID_LENGTH} characters")
    if not (instance_id.isascii() and all(c.isalnum() or c in "_-" for c in instance_id)):
        raise ApiError(400, errors.INSTANCE_ID_INVALID,
                       f"workflow instance ID '{instance_id}' is invalid: only alphanumeric "
                       "and underscore characters are allowed")


def _require_instance_id(instance_id: str) -> None:
    if not instance_id:
        raise ApiError(400, errors.INSTANCE_ID_PROVIDED_MISSING, "no instance ID was provided")


def _not_found(instance_id: str) -> ApiError:
    return ApiError(404, errors.INSTANCE_ID_NOT_FOUND,
                    f"unable to find workflow with the provided instance ID: {instance_id}")


def _json_payload(raw: bytes, what: str) -> payload.Raw | None:
    """An input or event data as the caller wrote it (empty: None). Dapr carries them as
    bytes; the engine keeps them as JSON, so bytes that are not JSON are refused here rather
    than failing the instance later."""
    try:
        if read_json(raw, what=what, empty=None) is None and not raw.strip():
            return None
    except JsonBodyError as exc:
        raise ApiError(400, errors.MALFORMED_REQUEST, str(exc)) from None
    return payload.Raw(raw.decode().strip())


async def _act(call: Awaitable[None], instance_id: str, code: str, what: str) -> None:
    """Run one instance operation: an unknown id is a 404, any other failure a 500."""
    try:
        await call
    except WorkflowNotFoundError as exc:
        raise _not_found(instance_id) from exc
    except Exception as exc:
        raise _failed(500, code, f"{what}: {exc}", exc) from exc
