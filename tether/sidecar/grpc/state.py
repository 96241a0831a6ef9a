"""The state RPCs: Dapr's state messages read into the state service's requests.

Values travel as bytes over gRPC and are stored as given (HTTP stores its JSON values as
JSON text): a value the SDK wrote is read back by ``GET /v1.0/state`` as JSON when it is
JSON, else as base64, as Dapr does. Checks and errors are the service's and
:mod:`tether.platform.state.requests`'s, the same as over HTTP.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from typing import Any

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import state_pb2

from tether.platform import errors
from tether.platform.components.keys import KeyScheme
from tether.platform.errors import ApiError
from tether.platform.state.requests import (
    CONTENT_TYPE,
    DELETE,
    UPSERT,
    BadRequest,
    BulkGet,
    DeleteRequest,
    SaveRequest,
    Transaction,
    parse_json,
    store_key,
    ttl_of,
)
from tether.platform.state.service import StateService, query_failed
from tether.platform.state.store import DeleteOperation, SetOperation
from tether.sidecar.state import read_query

_FIRST_WRITE = common_pb2.StateOptions.CONCURRENCY_FIRST_WRITE


def _bad(exc: BadRequest) -> ApiError:
    return ApiError(400, exc.code, str(exc))


def _decoded(value: bytes) -> Any:
    """The value as an outbox projection reads it: its JSON, its text, else base64."""
    try:
        return json.loads(value)
    except ValueError:
        pass
    try:
        return value.decode()
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")


def _etag(item: common_pb2.StateItem) -> str | None:
    return item.etag.value or None if item.HasField("etag") else None


def save_request(
    item: common_pb2.StateItem, keys: KeyScheme, shared: Mapping[str, str], what: str
) -> SaveRequest:
    """One StateItem to save; ``shared`` metadata (a transaction's) wins over the item's."""
    key, stored = store_key(keys, item.key, what)
    metadata = {**item.metadata, **shared}
    op = SetOperation(
        key=stored,
        value=item.value,
        etag=_etag(item),
        first_write=item.options.concurrency == _FIRST_WRITE,
        ttl_seconds=ttl_of(metadata),
        content_type=metadata.get(CONTENT_TYPE) or None,
    )
    return SaveRequest(key, op, _decoded(item.value), metadata)


def delete_request(
    key: str, etag: str | None, options: common_pb2.StateOptions, keys: KeyScheme,
    metadata: Mapping[str, str], what: str,
) -> DeleteRequest:
    key, stored = store_key(keys, key, what)
    op = DeleteOperation(key=stored, etag=etag or None,
                         first_write=options.concurrency == _FIRST_WRITE)
    return DeleteRequest(key, op, dict(metadata))


def _transaction(
    operations: Iterable[state_pb2.TransactionalStateOperation], keys: KeyScheme,
    metadata: Mapping[str, str],
) -> Transaction:
    ttl_of(metadata)  # checked even when no operation uses it (or there are none)
    ops: list[SaveRequest | DeleteRequest] = []
    for index, raw in enumerate(operations):
        what = f"operations[{index}]"
        item = raw.request
        if raw.operationType == UPSERT:
            ops.append(save_request(item, keys, metadata, what))
        elif raw.operationType == DELETE:
            ops.append(delete_request(item.key, _etag(item), item.options, keys,
                                      {**item.metadata, **metadata}, what))
        else:
            raise BadRequest(f"operation type {raw.operationType} not supported",
                             errors.NOT_SUPPORTED_STATE_OPERATION)
    return Transaction(ops, dict(metadata))


class StateRpc:
    """GetState, GetBulkState, SaveState, DeleteState, DeleteBulkState,
    ExecuteStateTransaction and QueryStateAlpha1 over a :class:`StateService`."""

    def __init__(self, service: StateService) -> None:
        self.service = service

    async def get(self, request: state_pb2.GetStateRequest) -> state_pb2.GetStateResponse:
        binding = self.service.binding(request.store_name)
        item = await self.service.get(binding, request.key)
        if item is None:
            return state_pb2.GetStateResponse()
        return state_pb2.GetStateResponse(data=item.value, etag=item.etag,
                                          metadata=dict(item.metadata))

    async def bulk_get(
        self, request: state_pb2.GetBulkStateRequest
    ) -> state_pb2.GetBulkStateResponse:
        binding = self.service.binding(request.store_name)
        try:
            wanted = BulkGet([store_key(binding.keys, k, f"keys[{i}]")
                              for i, k in enumerate(request.keys)])
        except BadRequest as exc:
            raise _bad(exc) from None
        found = await self.service.bulk_get(binding, wanted)
        items = [
            state_pb2.BulkStateItem(key=key) if item is None else state_pb2.BulkStateItem(
                key=key, data=item.value, etag=item.etag, metadata=dict(item.metadata))
            for key, item in found
        ]
        return state_pb2.GetBulkStateResponse(items=items)

    async def save(self, request: state_pb2.SaveStateRequest) -> None:
        binding = self.service.binding(request.store_name)
        try:
            items = [save_request(item, binding.keys, {}, f"states[{i}]")
                     for i, item in enumerate(request.states)]
        except BadRequest as exc:
            raise _bad(exc) from None
        await self.service.save(binding, items)

    async def delete(self, request: state_pb2.DeleteStateRequest) -> None:
        binding = self.service.binding(request.store_name)
        etag = request.etag.value if request.HasField("etag") else None
        try:
            delete = delete_request(request.key, etag, request.options, binding.keys,
                                    request.metadata, "key")
        except BadRequest as exc:
            raise _bad(exc) from None
        await self.service.delete(binding, delete)

    async def delete_bulk(self, request: state_pb2.DeleteBulkStateRequest) -> None:
        """Each item deleted on its own (as Dapr's BulkDelete on a store without
        transactions); every item is checked before the first is deleted."""
        binding = self.service.binding(request.store_name)
        try:
            deletes = [delete_request(item.key, _etag(item), item.options, binding.keys,
                                      item.metadata, f"states[{i}]")
                       for i, item in enumerate(request.states)]
        except BadRequest as exc:
            raise _bad(exc) from None
        for delete in deletes:
            await self.service.delete(binding, delete)

    async def transaction(
        self, request: state_pb2.ExecuteStateTransactionRequest, trace: Mapping[str, str]
    ) -> None:
        binding = self.service.transactional(request.storeName)
        try:
            txn = _transaction(request.operations, binding.keys, request.metadata)
        except BadRequest as exc:
            raise _bad(exc) from None
        await self.service.transaction(binding, txn, trace)

    async def query(self, request: state_pb2.QueryStateRequest) -> state_pb2.QueryStateResponse:
        binding = self.service.queryable(request.store_name)
        try:
            query = read_query(parse_json(request.query.encode()))
        except BadRequest as exc:
            raise query_failed(binding.name, exc) from None
        result = await self.service.query(binding, query)
        return state_pb2.QueryStateResponse(
            results=[state_pb2.QueryStateItem(key=i.key, data=i.value, etag=i.etag)
                     for i in result.items],
            token=result.token or "",
        )
