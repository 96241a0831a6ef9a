"""State on :class:`tether.Client`: save, get, bulk get, delete, transactions and the query
API over the sidecar's ``/v1.0/state`` API (docs/state.md). Method names and arguments
follow Dapr's Python SDK.

Values travel as JSON, as on Dapr's HTTP API: a dict, list, number, string, bool or None is
stored as its JSON text and comes back unchanged (``StateResponse.json()``); bytes are sent
as a base64 JSON string, as Go's JSON encoding of ``[]byte`` does.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.sdk.client_core import ClientBase, operation
from tether.sdk.client_errors import TetherApiError
from tether.sdk.client_http import Call, Reply, metadata_params, segment
from tether.sdk.client_plan import Plan

__all__ = ["BulkStateItem", "StateItem", "StateResponse", "TransactionalStateOperation"]

JSON_HEADERS = {"Content-Type": "application/json"}
FIRST_WRITE = "first-write"
LAST_WRITE = "last-write"
METADATA = "metadata."


@dataclass(frozen=True, slots=True)
class StateResponse:
    """One key's value as stored (JSON text), its ETag and the store's metadata; ``data``
    is empty and ``etag`` None when the key does not exist."""

    key: str
    data: bytes
    etag: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.etag is not None

    def json(self) -> Any:
        return json.loads(self.data) if self.data else None

    def text(self) -> str:
        return self.data.decode()


@dataclass(frozen=True, slots=True)
class BulkStateItem(StateResponse):
    error: str | None = None


@dataclass(frozen=True, slots=True)
class StateItem:
    """One item of ``save_bulk_state``."""

    key: str
    value: Any
    etag: str | None = None
    metadata: Mapping[str, str] | None = None
    concurrency: str | None = None
    consistency: str | None = None


@dataclass(frozen=True, slots=True)
class TransactionalStateOperation:
    """One operation of ``execute_state_transaction``: ``upsert`` (with ``data``) or
    ``delete``."""

    key: str
    data: Any = None
    etag: str | None = None
    operation_type: str = "upsert"
    metadata: Mapping[str, str] | None = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return value


def _options(concurrency: str | None, consistency: str | None) -> dict[str, str] | None:
    options = {k: v for k, v in (("concurrency", concurrency), ("consistency", consistency)) if v}
    return options or None


def _item(key: str, value: Any, etag: str | None, metadata: Mapping[str, str] | None,
          options: dict[str, str] | None) -> dict[str, Any]:
    item: dict[str, Any] = {"key": key, "value": _jsonable(value)}
    if etag is not None:
        item["etag"] = etag
    if metadata:
        item["metadata"] = dict(metadata)
    if options:
        item["options"] = options
    return item


def _post(path: str, body: Any, params: Mapping[str, str] | None = None) -> Call:
    return Call("POST", path, dict(params or {}), JSON_HEADERS, json.dumps(body).encode())


def save_call(store: str, items: Sequence[StateItem], metadata: Mapping[str, str] | None
              ) -> Call:
    body = [_item(i.key, i.value, i.etag, i.metadata, _options(i.concurrency, i.consistency))
            for i in items]
    return _post(f"/v1.0/state/{segment(store)}", body, metadata_params(metadata))


def get_call(store: str, key: str, metadata: Mapping[str, str] | None) -> Call:
    return Call("GET", f"/v1.0/state/{segment(store)}/{segment(key)}", metadata_params(metadata))


def state_of(key: str, reply: Reply) -> StateResponse:
    """Dapr's GET answer: 200 with the value as stored, its ETag and ``metadata.*`` in
    the headers; 204 when the key is absent."""
    if reply.status == 204:
        return StateResponse(key, b"")
    metadata = {name[len(METADATA):]: value for name, value in reply.headers.items()
                if name.lower().startswith(METADATA)}
    # every store has ETags; an empty one still marks the key as found
    return StateResponse(key, reply.body, reply.headers.get("ETag", ""), metadata)


def bulk_call(store: str, keys: Sequence[str], parallelism: int,
              metadata: Mapping[str, str] | None) -> Call:
    return _post(f"/v1.0/state/{segment(store)}/bulk",
                 {"keys": list(keys), "parallelism": parallelism}, metadata_params(metadata))


def bulk_of(reply: Reply) -> list[BulkStateItem]:
    body = reply.json()
    if not isinstance(body, list):
        raise TetherApiError(reply.status, None, "the bulk state answer is not an array")
    items = []
    for entry in body:
        data = json.dumps(entry["data"]).encode() if "data" in entry else b""
        items.append(BulkStateItem(entry["key"], data, entry.get("etag"),
                                   entry.get("metadata") or {}, entry.get("error")))
    return items


def delete_call(store: str, key: str, etag: str | None, concurrency: str | None,
                metadata: Mapping[str, str] | None) -> Call:
    params = metadata_params(metadata)
    if concurrency:
        params["concurrency"] = concurrency
    headers = {"If-Match": etag} if etag is not None else {}
    return Call("DELETE", f"/v1.0/state/{segment(store)}/{segment(key)}", params, headers)


def transaction_call(store: str, operations: Sequence[TransactionalStateOperation],
                     metadata: Mapping[str, str] | None) -> Call:
    ops = [{"operation": o.operation_type,
            "request": _item(o.key, o.data, o.etag, o.metadata, None)
            if o.operation_type == "upsert" else
            {k: v for k, v in _item(o.key, None, o.etag, o.metadata, None).items()
             if k != "value"}}
           for o in operations]
    body: dict[str, Any] = {"operations": ops}
    if metadata:
        body["metadata"] = dict(metadata)
    return _post(f"/v1.0/state/{segment(store)}/transaction", body)


def query_call(store: str, query: str | Mapping[str, Any],
               metadata: Mapping[str, str] | None) -> Call:
    body = query.encode() if isinstance(query, str) else json.dumps(query).encode()
    return Call("POST", f"/v1.0-alpha1/state/{segment(store)}/query", metadata_params(metadata),
                JSON_HEADERS, body)


def query_of(reply: Reply) -> tuple[list[BulkStateItem], str | None]:
    body = reply.json() or {}
    items = [BulkStateItem(r["key"], json.dumps(r.get("data")).encode(), r.get("etag"))
             for r in body.get("results", [])]
    return items, body.get("token")


class StateMixin(ClientBase):
    """The state API for both clients."""

    @operation
    def save_state(self, store_name: str, key: str, value: Any, etag: str | None = None,
                   concurrency: str | None = None, state_metadata: Mapping[str, str] | None
                   = None) -> Plan[None]:
        """Save one value; with ``etag`` only if it still matches (409
        ``ERR_STATE_SAVE`` otherwise, a :class:`TetherApiError`)."""
        item = StateItem(key, value, etag, state_metadata, concurrency)
        yield save_call(store_name, [item], None)

    @operation
    def save_bulk_state(self, store_name: str, states: Sequence[StateItem],
                        metadata: Mapping[str, str] | None = None) -> Plan[None]:
        yield save_call(store_name, states, metadata)

    @operation
    def get_state(self, store_name: str, key: str,
                  state_metadata: Mapping[str, str] | None = None) -> Plan[StateResponse]:
        """The value as stored; ``found`` is False (empty ``data``) when the key is absent."""
        return state_of(key, (yield get_call(store_name, key, state_metadata)))

    @operation
    def get_bulk_state(self, store_name: str, keys: Sequence[str], parallelism: int = 1,
                       states_metadata: Mapping[str, str] | None = None
                       ) -> Plan[list[BulkStateItem]]:
        """One item per key, in order; an absent key has empty ``data`` and no ETag."""
        return bulk_of((yield bulk_call(store_name, keys, parallelism, states_metadata)))

    @operation
    def delete_state(self, store_name: str, key: str, etag: str | None = None,
                     concurrency: str | None = None,
                     state_metadata: Mapping[str, str] | None = None) -> Plan[None]:
        yield delete_call(store_name, key, etag, concurrency, state_metadata)

    @operation
    def execute_state_transaction(
        self, store_name: str, operations: Sequence[TransactionalStateOperation],
        transactional_metadata: Mapping[str, str] | None = None,
    ) -> Plan[None]:
        """All operations or none (409 ``ERR_STATE_TRANSACTION`` on an ETag conflict)."""
        yield transaction_call(store_name, operations, transactional_metadata)

    @operation
    def query_state(self, store_name: str, query: str | Mapping[str, Any],
                    states_metadata: Mapping[str, str] | None = None
                    ) -> Plan[tuple[list[BulkStateItem], str | None]]:
        """Dapr's query API: (results, token for the next page or None)."""
        return query_of((yield query_call(store_name, query, states_metadata)))
