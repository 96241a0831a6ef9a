"""The sidecar's state API, as Dapr answers it (docs/state.md).

``/v1.0/state/{store}`` save, get, bulk get, delete and transaction, and the
``/v1.0-alpha1/state/{store}/query`` API, over the stores of :mod:`.registry`. Requests are
checked completely before anything is written (:mod:`.requests`). A store with a change feed
or an outbox writes its events as outbox records in the same transaction as the change,
and its relay publishes them (:mod:`.changes`, :mod:`.outbox`, :mod:`.relay`).
"""

from __future__ import annotations

import base64
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from tether.platform import errors
from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.errors import ApiError
from tether.platform.pubsub import PubSubRegistry
from tether.platform.state.changes import DELETE, UPSERT, ChangeFeed, ChangeFeedConfigError
from tether.platform.state.keys import InvalidKeyError, KeyScheme
from tether.platform.state.outbox import Outbox, OutboxConfigError, ProjectionError, Upsert
from tether.platform.state.registry import state_store_spec
from tether.platform.state.relay import OutboxRelay
from tether.platform.state.requests import (
    BadRequest,
    DeleteRequest,
    SaveRequest,
    bulk_get,
    check_options,
    parse_json,
    save_requests,
    transaction,
)
from tether.platform.state.store import (
    FEATURE_QUERY_API,
    FEATURE_TRANSACTIONAL,
    DeleteOperation,
    ETagInvalidError,
    ETagMismatchError,
    InvalidQueryError,
    Operation,
    OutboxRecord,
    Query,
    QueryNotSupportedError,
    SetOperation,
    StateItem,
    StateStore,
    StateStoreError,
)
from tether.platform.state.stores.common import new_etag
from tether.sidecar.request import request_metadata, trace_headers

log = logging.getLogger(__name__)

_STORE = "{store:[^/]+}"
_KEY = "{key:[^/]+}"


@dataclass
class StateBinding:
    """One state component as the API serves it."""

    name: str
    type: str
    keys: KeyScheme
    change_feed: ChangeFeed | None = None
    outbox: Outbox | None = None
    store: StateStore | None = None
    #: opens the store on start (then the API also closes it); None: ``store`` is given
    opener: Callable[[], Awaitable[StateStore]] | None = None
    relay: OutboxRelay | None = None

    @property
    def writes_events(self) -> bool:
        return self.change_feed is not None or self.outbox is not None


def _store_error(code: str, message: str, exc: StateStoreError) -> ApiError:
    """A store failure as Dapr answers it: 409 for an ETag conflict, 400 for an ETag the
    store could not have produced, else 500."""
    if isinstance(exc, ETagMismatchError):
        return ApiError(409, code, f"{message}: possible etag mismatch. error from state "
                                   f"store: {exc}")
    if isinstance(exc, ETagInvalidError):
        return ApiError(400, code, f"{message}: invalid etag value: {exc}")
    return ApiError(500, code, f"{message}: {exc}")


def _bad(exc: BadRequest) -> ApiError:
    return ApiError(400, exc.code, str(exc))


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


class StateApi:
    """The state building block: routes, and the stores and relays it opens and closes."""

    def __init__(
        self, app_id: str, bindings: Sequence[StateBinding], pubsub: PubSubRegistry
    ) -> None:
        self.app_id = app_id
        self.bindings = {b.name: b for b in bindings}
        self.pubsub = pubsub

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

    async def start(self) -> None:
        for binding in self.bindings.values():
            if binding.store is None and binding.opener is not None:
                binding.store = await binding.opener()
            store = binding.store
            if not binding.writes_events or store is None:
                continue
            if FEATURE_TRANSACTIONAL not in store.features:
                raise BlockConfigError(
                    f"state component {binding.name!r}: a change feed or an outbox needs a "
                    f"transactional store; {binding.type} is not"
                )
            if binding.relay is None:
                binding.relay = OutboxRelay(binding.name, store, self.pubsub)
            binding.relay.start()

    async def close(self) -> None:
        for binding in self.bindings.values():
            if binding.relay is not None:
                await binding.relay.close()
            if binding.store is not None and binding.opener is not None:
                await binding.store.close()
                binding.store = None

    def capabilities(self) -> dict[str, list[str]]:
        """Dapr's feature names per state component, for ``/v1.0/metadata``."""
        return {
            name: sorted(b.store.features) if b.store is not None else []
            for name, b in self.bindings.items()
        }

    # --- lookups -------------------------------------------------------------------------
    def _binding(self, request: web.Request) -> tuple[StateBinding, StateStore]:
        name = request.match_info["store"]
        if not self.bindings:
            raise ApiError(500, errors.STATE_STORE_NOT_CONFIGURED,
                           f"state store {name} is not configured")
        binding = self.bindings.get(name)
        if binding is None or binding.store is None:
            raise ApiError(400, errors.STATE_STORE_NOT_FOUND, f"state store {name} is not found")
        return binding, binding.store

    async def _transact(
        self, binding: StateBinding, store: StateStore, ops: Sequence[Operation],
        records: Sequence[OutboxRecord],
    ) -> None:
        await store.transact(ops, outbox=records)
        if records and binding.relay is not None:
            binding.relay.written([r.id for r in records])

    def _change(
        self, binding: StateBinding, key: str, stored: str, operation: str, etag: str | None,
        transaction_id: str | None = None,
    ) -> list[OutboxRecord]:
        feed = binding.change_feed
        if feed is None:
            return []
        event = feed.event(app_id=self.app_id, key=key, stored_key=stored, operation=operation,
                           etag=etag, transaction=transaction_id)
        return [feed.record(event)]

    # --- handlers ------------------------------------------------------------------------
    async def get(self, request: web.Request) -> web.StreamResponse:
        binding, store = self._binding(request)
        key = request.match_info["key"]
        try:
            stored = binding.keys.store_key(key)
        except ValueError as exc:
            raise ApiError(400, errors.MALFORMED_REQUEST, str(exc)) from None
        try:
            item = await store.get(stored)
        except StateStoreError as exc:
            raise ApiError(500, errors.STATE_GET,
                           f"fail to get {key} from state store {binding.name}: {exc}") from exc
        if item is None:
            return web.Response(status=204)
        headers = {"ETag": item.etag}
        headers.update({f"metadata.{k}": v for k, v in item.metadata.items()})
        return web.Response(body=item.value, headers=headers, content_type="application/json")

    async def save(self, request: web.Request) -> web.StreamResponse:
        binding, store = self._binding(request)
        try:
            items = save_requests(await request.read(), binding.keys, request_metadata(request))
        except BadRequest as exc:
            raise _bad(exc) from None
        if not items:
            return web.Response(status=204)
        message = f"failed saving state in state store {binding.name}"
        failures: list[StateStoreError] = []
        # like Dapr's bulk save: each item on its own; the first conflict answers
        for item in items:
            try:
                if binding.change_feed is None:
                    await store.set(item.op)
                else:
                    op = _fresh(item.op)
                    records = self._change(binding, item.key, op.key, UPSERT, op.new_etag)
                    await self._transact(binding, store, [op], records)
            except StateStoreError as exc:
                failures.append(exc)
        if failures:
            conflict = next((f for f in failures if isinstance(f, ETagMismatchError)), None)
            invalid = next((f for f in failures if isinstance(f, ETagInvalidError)), None)
            raise _store_error(errors.STATE_SAVE, message, conflict or invalid or failures[0])
        return web.Response(status=204)

    async def delete(self, request: web.Request) -> web.StreamResponse:
        binding, store = self._binding(request)
        key = request.match_info["key"]
        concurrency = request.query.get("concurrency", "")
        try:
            stored = binding.keys.store_key(key)
            check_options(concurrency, request.query.get("consistency", ""), "query")
        except (ValueError, BadRequest) as exc:
            raise ApiError(400, errors.MALFORMED_REQUEST, str(exc)) from None
        etag = request.headers.get("If-Match")
        op = DeleteOperation(key=stored, etag=etag, first_write=concurrency == "first-write")
        try:
            if binding.change_feed is None:
                await store.delete(op)
            else:
                records = self._change(binding, key, stored, DELETE, None)
                await self._transact(binding, store, [op], records)
        except StateStoreError as exc:
            raise _store_error(
                errors.STATE_DELETE, f"failed deleting state with key {key}", exc
            ) from exc
        return web.Response(status=204)

    async def bulk_get(self, request: web.Request) -> web.StreamResponse:
        binding, store = self._binding(request)
        try:
            wanted = bulk_get(await request.read(), binding.keys)
        except BadRequest as exc:
            raise _bad(exc) from None
        try:
            found = await store.bulk_get([stored for _, stored in wanted.keys]) if wanted.keys \
                else []
        except StateStoreError as exc:
            raise ApiError(500, errors.STATE_BULK_GET, str(exc)) from exc
        body = b"[" + b",".join(
            _item_json(key, item) for (key, _), item in zip(wanted.keys, found, strict=True)
        ) + b"]"
        return web.Response(body=body, content_type="application/json")

    async def transaction(self, request: web.Request) -> web.StreamResponse:
        binding, store = self._binding(request)
        if FEATURE_TRANSACTIONAL not in store.features:
            raise ApiError(500, errors.STATE_STORE_NOT_SUPPORTED,
                           f"state store {binding.name} doesn't support transactions")
        try:
            txn = transaction(await request.read(), binding.keys, request_metadata(request))
        except BadRequest as exc:
            raise _bad(exc) from None
        if not txn.operations:
            return web.Response(status=204)
        records: list[OutboxRecord] = []
        if binding.outbox is not None:
            upserts = [Upsert(o.key, o.op.key, o.value, o.metadata)
                       for o in txn.operations if isinstance(o, SaveRequest)]
            try:
                records += binding.outbox.records(
                    upserts, app_id=self.app_id, trace=trace_headers(request)
                )
            except ProjectionError as exc:
                raise ApiError(400, errors.STATE_TRANSACTION,
                               f"error while executing state transaction: {exc}") from None
        saved = [o for o in txn.operations if not _is_projection(o, binding)]
        ops: list[Operation] = [o.op for o in saved]
        if binding.change_feed is not None:
            txn_id = str(uuid.uuid4())
            ops = [_fresh(op) if isinstance(op, SetOperation) else op for op in ops]
            for o, op in zip(saved, ops, strict=True):
                if isinstance(op, SetOperation):
                    records += self._change(binding, o.key, op.key, UPSERT, op.new_etag,
                                            txn_id)
                else:
                    records += self._change(binding, o.key, op.key, DELETE, None, txn_id)
        try:
            await self._transact(binding, store, ops, records)
        except StateStoreError as exc:
            raise _store_error(errors.STATE_TRANSACTION,
                               "error while executing state transaction", exc) from exc
        return web.Response(status=204)

    async def query(self, request: web.Request) -> web.StreamResponse:
        binding, store = self._binding(request)
        if FEATURE_QUERY_API not in store.features:
            raise ApiError(500, errors.STATE_STORE_NOT_SUPPORTED,
                           "state store does not support querying")
        try:
            query = _query(parse_json(await request.read()), binding.keys.prefix)
        except BadRequest as exc:
            raise ApiError(400, errors.STATE_QUERY,
                           f"state store {binding.name} query failed: {exc}") from None
        try:
            result = await store.query(query)
        except QueryNotSupportedError:
            raise ApiError(500, errors.STATE_STORE_NOT_SUPPORTED,
                           "state store does not support querying") from None
        except InvalidQueryError as exc:
            raise ApiError(400, errors.STATE_QUERY,
                           f"state store {binding.name} query failed: {exc}") from None
        except StateStoreError as exc:
            raise ApiError(500, errors.STATE_QUERY,
                           f"state store {binding.name} query failed: {exc}") from exc
        items = b",".join(
            _query_item(binding.keys.app_key(item.key), item) for item in result.items
        )
        body = b'{"results":[' + items + b"]"
        if result.token:
            body += b',"token":' + json.dumps(result.token).encode()
        return web.Response(body=body + b"}", content_type="application/json")


def _fresh(op: SetOperation) -> SetOperation:
    """The set with its new ETag chosen here, so the change event written in the same
    transaction carries the ETag the item will have (what a GET then answers)."""
    return replace(op, new_etag=new_etag())


def _is_projection(o: SaveRequest | DeleteRequest, binding: StateBinding) -> bool:
    # projections shape the outbox event only; without an outbox they are saved as usual
    return (binding.outbox is not None and isinstance(o, SaveRequest)
            and Upsert(o.key, o.op.key, o.value, o.metadata).is_projection)


def _query_item(key: str, item: StateItem) -> bytes:
    return (b'{"key":' + json.dumps(key, ensure_ascii=False).encode() + b',"data":'
            + _data_json(item.value) + b',"etag":' + json.dumps(item.etag).encode() + b"}")


def _query(body: Any, key_prefix: str) -> Query:
    """Dapr's query body: ``{filter, sort: [{key, order}], page: {limit, token}}``."""
    if not isinstance(body, dict):
        raise BadRequest("the query must be a JSON object")
    filter_ = body.get("filter")
    if filter_ is not None and not isinstance(filter_, dict):
        raise BadRequest("filter must be an object")
    sort = body.get("sort") or []
    if not isinstance(sort, list) or not all(isinstance(s, dict) for s in sort):
        raise BadRequest("sort must be an array of {key, order} objects")
    page = body.get("page") or {}
    if not isinstance(page, Mapping):
        raise BadRequest("page must be an object")
    limit = page.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise BadRequest("page.limit must be a non-negative number")
    token = page.get("token")
    if token is not None and not isinstance(token, str):
        raise BadRequest("page.token must be a string")
    return Query(filter=filter_ or None, sort=tuple(sort), limit=limit or None,
                 token=token or None, key_prefix=key_prefix)


def binding_for(component: Any, context: BlockContext) -> StateBinding:
    """Check one ``state.*`` component (no I/O); BlockConfigError names what is wrong."""
    spec = state_store_spec(component)
    try:
        keys = KeyScheme.for_component(component, context.app_id)
        feed = ChangeFeed.from_component(component)
        outbox = Outbox.from_component(component)
    except (InvalidKeyError, ChangeFeedConfigError, OutboxConfigError) as exc:
        raise BlockConfigError(str(exc)) from None
    for pubsub, what in ((feed and feed.pubsub, "changeFeedPubsub"),
                         (outbox and outbox.pubsub, "outboxPublishPubsub")):
        if pubsub and pubsub not in context.pubsub.names:
            raise BlockConfigError(
                f"state component {component.name!r}: {what} {pubsub!r} is not a pub/sub "
                f"component of app {context.app_id!r}"
            )
    return StateBinding(component.name, component.type, keys, feed, outbox, opener=spec.opener)


def state_block(context: BlockContext) -> StateApi:
    """The state API over the app's ``state.*`` components (always served: with none, a
    call answers Dapr's ERR_STATE_STORE_NOT_CONFIGURED)."""
    bindings = [binding_for(c, context) for c in context.components if c.block == "state"]
    return StateApi(context.app_id, bindings, context.pubsub)
