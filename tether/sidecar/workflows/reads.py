"""Tether's own workflow reads, which Dapr's HTTP API lacks (for ``tether workflow list``
and ``tether workflow history``)::

    GET /v1.0-alpha1/workflows/tether/instances[?status=RUNNING,FAILED&name=N&limit=100
                                                 &continuationToken=T]
        200 {"instances": [{instanceID, workflowName, createdAt, lastUpdatedAt,
                            runtimeStatus, parentInstanceID?}], "continuationToken"?: T}
    GET /v1.0-alpha1/workflows/tether/{instanceID}/history
        200 {"instanceID": ..., "events": [{"type": "TaskScheduled", "timestamp": ..., ...}]}

The list reads the instances' metadata records with the state store's query API (SQLite,
PostgreSQL and the in-memory store have it; on Redis the list answers 501
ERR_LIST_WORKFLOWS). Newest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from tether.platform import errors
from tether.platform.errors import ApiError
from tether.platform.state.store import Query, QueryNotSupportedError
from tether.platform.workflows.durable.errors import WorkflowNotFoundError
from tether.platform.workflows.durable.instances import InstanceMeta
from tether.platform.workflows.history import RuntimeStatus
from tether.sidecar.workflows import shape

if TYPE_CHECKING:
    from tether.sidecar.workflows.api import WorkflowApi

PREFIX = "/v1.0-alpha1/workflows/tether"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def _bad(message: str) -> ApiError:
    return ApiError(400, errors.MALFORMED_REQUEST, message)


def _statuses(text: str | None) -> list[str]:
    if not text:
        return [s.value for s in RuntimeStatus]
    wanted = [part.strip().upper() for part in text.split(",") if part.strip()]
    known = {s.value for s in RuntimeStatus}
    unknown = [w for w in wanted if w not in known]
    if unknown or not wanted:
        raise _bad(f"status {text!r}: use a comma list of {', '.join(sorted(known))}")
    return wanted


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise _bad(f"limit {text!r} must be a number from 1 to {MAX_LIMIT}")
    return int(text)


def list_item(meta: InstanceMeta) -> dict[str, Any]:
    item: dict[str, Any] = {
        "instanceID": meta.instance_id,
        "workflowName": meta.name,
        "createdAt": shape.timestamp(meta.created_at),
        "lastUpdatedAt": shape.timestamp(meta.updated_at),
        "runtimeStatus": meta.status.value,
    }
    if meta.parent is not None:
        item["parentInstanceID"] = meta.parent.instance_id
    return item


class TetherReads:
    """The list and history routes, on the workflow block's connection."""

    def __init__(self, api: WorkflowApi) -> None:
        self.api = api

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get(PREFIX + "/instances", self.list_instances),
            web.get(PREFIX + "/{instance:[^/]*}/history", self.history),
        ]

    async def list_instances(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        statuses = _statuses(q.get("status"))
        limit = _limit(q.get("limit"))
        token = q.get("continuationToken") or None
        conds: list[dict[str, Any]] = [{"IN": {"status": statuses}}]
        if q.get("name"):
            conds.append({"EQ": {"name": q["name"]}})
        await self.api.client(errors.LIST_WORKFLOWS)
        conn = self.api.connection
        assert conn is not None
        # metadata records only: history chunks under the same prefix have no status field
        query = Query(filter={"AND": conds} if len(conds) > 1 else conds[0],
                      sort=[{"key": "created_at", "order": "DESC"}], limit=limit, token=token,
                      key_prefix=f"{conn.names.namespace}||instance||")
        try:
            result = await conn.store.query(query)
        except QueryNotSupportedError as exc:
            raise ApiError(501, errors.LIST_WORKFLOWS, "listing workflow instances needs a "
                           f"state store with the query API: {exc}") from exc
        except Exception as exc:
            raise ApiError(500, errors.LIST_WORKFLOWS,
                           f"error listing workflow instances: {exc}") from exc
        items = [list_item(InstanceMeta.from_json(i.value)) for i in result.items
                 if i.key.endswith("||meta")]
        body: dict[str, Any] = {"instances": items}
        if result.token:
            body["continuationToken"] = result.token
        return web.json_response(body)

    async def history(self, request: web.Request) -> web.StreamResponse:
        instance_id = request.match_info["instance"]
        shape.require_instance_id(instance_id)
        client = await self.api.client(errors.GET_WORKFLOW)
        try:
            events = await client.get_workflow_history(instance_id)
        except WorkflowNotFoundError as exc:
            raise shape.not_found(instance_id) from exc
        except Exception as exc:
            raise ApiError(500, errors.GET_WORKFLOW, "error while getting the history of "
                           f"instance '{instance_id}': {exc}") from exc
        return web.json_response({"instanceID": instance_id,
                                  "events": [e.to_dict() for e in events]})
