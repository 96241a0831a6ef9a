"""The state block's service: Dapr's state operations over the app's state stores.

Save, get, bulk get, delete, transaction and query on the stores of :mod:`.registry`, with
Dapr's checks and its error codes (as :class:`~tether.platform.errors.ApiError`), for any
front end. A call first looks its store up (:meth:`StateService.binding`, or
:meth:`~StateService.transactional` / :meth:`~StateService.queryable`, which also check the
feature), then reads its request with that store's key scheme (:mod:`.requests`), then runs
the operation. A store with a change feed or an outbox writes its events as outbox records
in the same transaction as the change, and its relay publishes them (:mod:`.changes`,
:mod:`.outbox`, :mod:`.relay`).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from time import perf_counter
from typing import Any, TypeVar

from tether.platform import errors, metrics
from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.components.keys import InvalidKeyError, KeyScheme
from tether.platform.errors import ApiError
from tether.platform.pubsub import PubSubRegistry
from tether.platform.resiliency import Policy, ResiliencyError
from tether.platform.state.changes import DELETE, UPSERT, ChangeFeed, ChangeFeedConfigError
from tether.platform.state.outbox import Outbox, OutboxConfigError, ProjectionError, Upsert
from tether.platform.state.registry import state_store_spec
from tether.platform.state.relay import OutboxRelay
from tether.platform.state.requests import (
    BadRequest,
    BulkGet,
    DeleteRequest,
    SaveRequest,
    Transaction,
    store_key,
)
from tether.platform.state.store import (
    FEATURE_QUERY_API,
    FEATURE_TRANSACTIONAL,
    ETagInvalidError,
    ETagMismatchError,
    InvalidOperationError,
    InvalidQueryError,
    Operation,
    OutboxRecord,
    Query,
    QueryNotSupportedError,
    QueryResult,
    SetOperation,
    StateItem,
    StateStore,
    StateStoreError,
)
from tether.platform.state.stores.common import check_operations, new_etag


@dataclass
class StateBinding:
    """One state component as the service serves it."""

    name: str
    type: str
    keys: KeyScheme
    change_feed: ChangeFeed | None = None
    outbox: Outbox | None = None
    store: StateStore | None = None
    #: opens the store on start (then the service also closes it); None: ``store`` is given
    opener: Callable[[], Awaitable[StateStore]] | None = None
    relay: OutboxRelay | None = None
    #: the component's outbound resiliency policy: every call to the store runs under it
    policy: Policy = field(default_factory=lambda: Policy("state"))

    @property
    def writes_events(self) -> bool:
        return self.change_feed is not None or self.outbox is not None


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
    policy = context.resiliency.component_outbound(component.name, "state")
    return StateBinding(component.name, component.type, keys, feed, outbox, opener=spec.opener,
                        policy=policy)


T = TypeVar("T")
#: store failures no retry can change: the caller's request is what is wrong
_PERMANENT = (ETagMismatchError, InvalidOperationError, InvalidQueryError, QueryNotSupportedError)


def _permanent(exc: BaseException) -> bool:
    transient = isinstance(exc, StateStoreError | OSError | TimeoutError)
    return not transient or isinstance(exc, _PERMANENT)


async def _call(
    app_id: str, binding: StateBinding, operation: str, fn: Callable[[], Awaitable[T]]
) -> T:
    """One call to the store under the component's outbound policy; the policy's own end of
    it (a timeout, an open circuit breaker) is a store failure, answered as one (500).
    Counted and timed as dapr_component_state_* by ``operation``."""
    start = perf_counter()
    success = "false"
    try:
        result = await binding.policy.call(fn, permanent=_permanent)
        success = "true"
        return result
    except ResiliencyError as exc:
        raise StateStoreError(str(exc)) from exc
    finally:
        metrics.STATE.record((app_id, binding.name, operation, success), perf_counter() - start)


def query_failed(name: str, exc: Exception, status: int = 400) -> ApiError:
    """A query Dapr answers as failed: 400 for one that cannot be read, else 500."""
    return ApiError(status, errors.STATE_QUERY, f"state store {name} query failed: {exc}")


def _store_error(code: str, message: str, exc: StateStoreError) -> ApiError:
    """A store failure as Dapr answers it: 409 for an ETag conflict, 400 for an ETag the
    store could not have produced or another operation it refused, else 500."""
    if isinstance(exc, ETagMismatchError):
        return ApiError(409, code, f"{message}: possible etag mismatch. error from state "
                                   f"store: {exc}")
    if isinstance(exc, ETagInvalidError):
        return ApiError(400, code, f"{message}: invalid etag value: {exc}")
    if isinstance(exc, InvalidOperationError):
        return ApiError(400, code, f"{message}: {exc}")
    return ApiError(500, code, f"{message}: {exc}")


def _not_found(name: str) -> ApiError:
    return ApiError(400, errors.STATE_STORE_NOT_FOUND, f"state store {name} is not found")


def _query_not_supported() -> ApiError:
    return ApiError(500, errors.STATE_STORE_NOT_SUPPORTED, "state store does not support querying")


def _store(binding: StateBinding) -> StateStore:
    if binding.store is None:  # the service closed since the call looked the store up
        raise _not_found(binding.name)
    return binding.store


class StateService:
    """The state building block: its operations, and the stores and relays it opens and
    closes."""

    def __init__(
        self, app_id: str, bindings: Sequence[StateBinding], pubsub: PubSubRegistry
    ) -> None:
        self.app_id = app_id
        self.bindings = {b.name: b for b in bindings}
        self.pubsub = pubsub

    @classmethod
    def from_context(cls, context: BlockContext) -> StateService:
        """The service over the app's ``state.*`` components (a bad one: BlockConfigError)."""
        bindings = [binding_for(c, context) for c in context.components if c.block == "state"]
        return cls(context.app_id, bindings, context.pubsub)

    # --- lifecycle -----------------------------------------------------------------------
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
        """Dapr's feature names per state component, for the metadata API."""
        return {
            name: sorted(b.store.features) if b.store is not None else []
            for name, b in self.bindings.items()
        }

    # --- lookups (Dapr's first checks, before the request is read) -----------------------
    def binding(self, name: str) -> StateBinding:
        """The open store called ``name``."""
        if not self.bindings:
            raise ApiError(500, errors.STATE_STORE_NOT_CONFIGURED,
                           f"state store {name} is not configured")
        binding = self.bindings.get(name)
        if binding is None or binding.store is None:
            raise _not_found(name)
        return binding

    def transactional(self, name: str) -> StateBinding:
        """The open store called ``name``, which must support transactions."""
        binding = self.binding(name)
        if FEATURE_TRANSACTIONAL not in _store(binding).features:
            raise ApiError(500, errors.STATE_STORE_NOT_SUPPORTED,
                           f"state store {name} doesn't support transactions")
        return binding

    def queryable(self, name: str) -> StateBinding:
        """The open store called ``name``, which must support the query API."""
        binding = self.binding(name)
        if FEATURE_QUERY_API not in _store(binding).features:
            raise _query_not_supported()
        return binding

    # --- operations ----------------------------------------------------------------------
    async def get(self, binding: StateBinding, key: str) -> StateItem | None:
        """The item of the app's ``key``, or None."""
        try:
            _, stored = store_key(binding.keys, key, "path")
        except BadRequest as exc:
            raise ApiError(400, exc.code, str(exc)) from None
        try:
            store = _store(binding)
            return await _call(self.app_id, binding, "get", lambda: store.get(stored))
        except StateStoreError as exc:
            raise ApiError(500, errors.STATE_GET,
                           f"fail to get {key} from state store {binding.name}: {exc}") from exc

    async def save(self, binding: StateBinding, items: Sequence[SaveRequest]) -> None:
        store = _store(binding)
        message = f"failed saving state in state store {binding.name}"
        try:  # each item is written on its own: a refused one must not follow a written one
            check_operations([item.op for item in items])
        except InvalidOperationError as exc:
            raise _store_error(errors.STATE_SAVE, message, exc) from None
        failures: list[StateStoreError] = []
        # like Dapr's bulk save: each item on its own; the first conflict answers
        for item in items:
            try:
                if binding.change_feed is None:
                    op = item.op
                    await _call(self.app_id, binding, "set",
                                lambda: store.set(op))  # noqa: B023 - awaited here
                else:
                    op = _fresh(item.op)
                    records = self._change(binding, item.key, op.key, UPSERT, op.new_etag)
                    await self._transact(binding, store, [op], records)
            except StateStoreError as exc:
                failures.append(exc)
        if failures:
            conflict = next((f for f in failures if isinstance(f, ETagMismatchError)), None)
            raise _store_error(errors.STATE_SAVE, message, conflict or failures[0])

    async def delete(self, binding: StateBinding, request: DeleteRequest) -> None:
        store = _store(binding)
        try:
            if binding.change_feed is None:
                await _call(self.app_id, binding, "delete", lambda: store.delete(request.op))
            else:
                records = self._change(binding, request.key, request.op.key, DELETE, None)
                await self._transact(binding, store, [request.op], records)
        except StateStoreError as exc:
            raise _store_error(
                errors.STATE_DELETE, f"failed deleting state with key {request.key}", exc
            ) from exc

    async def bulk_get(
        self, binding: StateBinding, wanted: BulkGet
    ) -> list[tuple[str, StateItem | None]]:
        """(the app's key, its item or None) for each key, in the order asked."""
        try:
            store = _store(binding)
            stored = [stored for _, stored in wanted.keys]
            found = await _call(self.app_id, binding, "bulk_get",
                                lambda: store.bulk_get(stored)) if stored else []
        except StateStoreError as exc:
            raise ApiError(500, errors.STATE_BULK_GET, str(exc)) from exc
        return [(key, item) for (key, _), item in zip(wanted.keys, found, strict=True)]

    async def transaction(
        self, binding: StateBinding, txn: Transaction, trace: Mapping[str, str]
    ) -> None:
        """Every operation, or none; ``trace`` (W3C trace headers) goes into outbox events."""
        store = _store(binding)
        if not txn.operations:
            return
        records: list[OutboxRecord] = []
        if binding.outbox is not None:
            upserts = [Upsert(o.key, o.op.key, o.value, o.metadata)
                       for o in txn.operations if isinstance(o, SaveRequest)]
            try:
                records += binding.outbox.records(upserts, app_id=self.app_id, trace=trace)
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

    async def query(self, binding: StateBinding, query: Query) -> QueryResult:
        """One page of the app's items matching ``query``, keyed by the app's keys."""
        try:
            store = _store(binding)
            prefixed = replace(query, key_prefix=binding.keys.prefix)
            result = await _call(self.app_id, binding, "query", lambda: store.query(prefixed))
        except QueryNotSupportedError:
            raise _query_not_supported() from None
        except InvalidQueryError as exc:
            raise query_failed(binding.name, exc) from None
        except StateStoreError as exc:
            raise query_failed(binding.name, exc, 500) from exc
        items = [replace(item, key=binding.keys.app_key(item.key)) for item in result.items]
        return replace(result, items=items)

    # --- writing events ------------------------------------------------------------------
    async def _transact(
        self, binding: StateBinding, store: StateStore, ops: Sequence[Operation],
        records: Sequence[OutboxRecord],
    ) -> None:
        await _call(self.app_id, binding, "transaction",
                    lambda: store.transact(ops, outbox=records))
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


def _fresh(op: SetOperation) -> SetOperation:
    """The set with its new ETag chosen here, so the change event written in the same
    transaction carries the ETag the item will have (what a GET then answers)."""
    return replace(op, new_etag=new_etag())


def _is_projection(o: SaveRequest | DeleteRequest, binding: StateBinding) -> bool:
    # projections shape the outbox event only; without an outbox they are saved as usual
    return (binding.outbox is not None and isinstance(o, SaveRequest)
            and Upsert(o.key, o.op.key, o.value, o.metadata).is_projection)
