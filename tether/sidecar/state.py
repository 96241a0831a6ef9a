"""The sidecar's state API over HTTP, as Dapr answers it (docs/state.md).

``/v1.0/state/{store}`` save, get, bulk get, delete and transaction, and the
``/v1.0-alpha1/state/{store}/query`` API: each route looks its store up in the
:class:`~tether.platform.state.service.StateService`, reads the request (path, query,
headers, and a JSON body checked completely by :mod:`tether.platform.state.requests`), calls
the service and renders its answer: JSON, ETag and ``metadata.*`` headers, 204 when there
is nothing to return.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from aiohttp import web

from tether.platform.blocks import BlockContext
from tether.platform.errors import ApiError
from tether.platform.state.requests import (
    FIRST_WRITE,
    BadRequest,
    DeleteRequest,
    bulk_get,
    check_options,
    parse_json,
    save_requests,
    store_key,
    transaction,
)
from tether.platform.state.service import StateBinding, StateService, query_failed
from tether.platform.state.store import DeleteOperation, Query, StateItem
from tether.sidecar.api_block import ServiceRoutes
from tether.sidecar.request import header, request_metadata, trace_headers

P = ParamSpec("P")
T = TypeVar("T")

_STORE = "{store:[^/]+}"
_KEY = "{key:[^/]+}"


def _bad(exc: BadRequest) -> ApiError:
    return ApiError(400, exc.code, str(exc))


def _read(parse: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``parse(...)`` of a request, its BadRequest answered as the state API's 400."""
    try:
        return parse(*args, **kwargs)
    except BadRequest as exc:
        raise _bad(exc) from None


def _no_content() -> web.Response:
    return web.Response(status=204)


def _data_json(value: bytes) -> bytes:
    """A stored value as a JSON value inside a response (bulk, query): JSON text as-is,
    anything else (bytes written by an SDK) as a base64 string."""
    try:
        json.loads(value, parse_constant=_not_json)  # NaN and Infinity are not JSON
        return value
    except ValueError:
        return json.dumps(base64.b64encode(value).decode("ascii")).encode()


def _not_json(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _item_json(key: str, item: StateItem | None) -> bytes:
    head = b'{"key":' + json.dumps(key, ensure_ascii=False).encode()
    if item is None:
        return head + b"}"
    body = head + b',"data":' + _data_json(item.value)
    body += b',"etag":' + json.dumps(item.etag).encode()
    if item.metadata:
        body += b',"metadata":' + json.dumps(dict(item.metadata)).encode()
    return body + b"}"


def _query_item(item: StateItem) -> bytes:
    return (b'{"key":' + json.dumps(item.key, ensure_ascii=False).encode() + b',"data":'
            + _data_json(item.value) + b',"etag":' + json.dumps(item.etag).encode() + b"}")


def read_query(body: Any) -> Query:
    """Dapr's query body: ``{filter, sort: [{key, order}], page: {limit, token}}``."""
    if not isinstance(body, dict):
        raise BadRequest("the query must be a JSON object")
    filter_ = body.get("filter")
    if filter_ is not None and not isinstance(filter_, dict):
        raise BadRequest("filter must be an object")
    # only null stands for "not given": a falsy value of the wrong kind is refused
    sort = body.get("sort")
    sort = [] if sort is None else sort
    if not isinstance(sort, list) or not all(isinstance(s, dict) for s in sort):
        raise BadRequest("sort must be an array of {key, order} objects")
    page = body.get("page")
    page = {} if page is None else page
    if not isinstance(page, Mapping):
        raise BadRequest("page must be an object")
    limit = page.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise BadRequest("page.limit must be a non-negative number")
    token = page.get("token")
    if token is not None and not isinstance(token, str):
        raise BadRequest("page.token must be a string")
    return Query(filter=filter_ or None, sort=tuple(sort), limit=limit or None,
                 token=token or None)


class StateApi(ServiceRoutes[StateService]):
    """The state building block's HTTP routes over its service."""

    @property
    def bindings(self) -> Mapping[str, StateBinding]:
        """The service's stores by name."""
        return self.service.bindings

    # --- block lifecycle ---------------------------------------------------------------
    def routes(self) -> Sequence[web.RouteDef]:
        # aiohttp tries the resources under /v1.0/state one after another, and one path's
        # methods share a resource only when they are added one after the other: so each
        # path's methods are adjacent, and the most frequent paths (save, then get) come
        # first. The paths are distinct, so the order changes no answer.
        store, key = f"/v1.0/state/{_STORE}", f"/v1.0/state/{_STORE}/{_KEY}"
        routes = [web.post(store, self.save), web.put(store, self.save),
                  web.get(key, self.get), web.delete(key, self.delete)]
        for path, handler in ((f"{store}/bulk", self.bulk_get),
                              (f"{store}/transaction", self.transaction),
                              (f"/v1.0-alpha1/state/{_STORE}/query", self.query)):
            routes += [web.post(path, handler), web.put(path, handler)]
        return routes

    def capabilities(self) -> dict[str, list[str]]:
        """Dapr's feature names per state component, for ``/v1.0/metadata``."""
        return self.service.capabilities()

    # --- handlers ------------------------------------------------------------------------
    async def get(self, request: web.Request) -> web.StreamResponse:
        binding = self.service.binding(request.match_info["store"])
        item = await self.service.get(binding, request.match_info["key"])
        if item is None:
            return _no_content()
        headers = {"ETag": item.etag}
        headers.update({f"metadata.{k}": v for k, v in item.metadata.items()})
        return web.Response(body=item.value, headers=headers, content_type="application/json")

    async def save(self, request: web.Request) -> web.StreamResponse:
        binding = self.service.binding(request.match_info["store"])
        items = _read(save_requests, await request.read(), binding.keys,
                      request_metadata(request))
        await self.service.save(binding, items)
        return _no_content()

    async def delete(self, request: web.Request) -> web.StreamResponse:
        binding = self.service.binding(request.match_info["store"])
        concurrency = request.query.get("concurrency", "")
        key, stored = _read(store_key, binding.keys, request.match_info["key"], "path")
        _read(check_options, concurrency, request.query.get("consistency", ""), "query")
        op = DeleteOperation(key=stored, etag=header(request, "If-Match"),
                             first_write=concurrency == FIRST_WRITE)
        await self.service.delete(binding, DeleteRequest(key, op))
        return _no_content()

    async def bulk_get(self, request: web.Request) -> web.StreamResponse:
        binding = self.service.binding(request.match_info["store"])
        wanted = _read(bulk_get, await request.read(), binding.keys)
        found = await self.service.bulk_get(binding, wanted)
        body = b"[" + b",".join(_item_json(key, item) for key, item in found) + b"]"
        return web.Response(body=body, content_type="application/json")

    async def transaction(self, request: web.Request) -> web.StreamResponse:
        binding = self.service.transactional(request.match_info["store"])
        txn = _read(transaction, await request.read(), binding.keys, request_metadata(request))
        await self.service.transaction(binding, txn, trace_headers(request))
        return _no_content()

    async def query(self, request: web.Request) -> web.StreamResponse:
        binding = self.service.queryable(request.match_info["store"])
        try:
            query = read_query(parse_json(await request.read()))
        except BadRequest as exc:
            raise query_failed(binding.name, exc) from None
        result = await self.service.query(binding, query)
        body = b'{"results":[' + b",".join(_query_item(item) for item in result.items) + b"]"
        if result.token:
            body += b',"token":' + json.dumps(result.token).encode()
        return web.Response(body=body + b"}", content_type="application/json")


def state_block(context: BlockContext) -> StateApi:
    """The state API over the app's ``state.*`` components (always served: with none, a
    call answers Dapr's ERR_STATE_STORE_NOT_CONFIGURED)."""
    return StateApi(StateService.from_context(context))
