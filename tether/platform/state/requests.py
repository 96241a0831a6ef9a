"""The state API's request bodies, checked completely before anything is written.

Values travel as JSON (as in Dapr's HTTP API): a value is stored as its JSON text and
returned as-is. Every problem raises :class:`BadRequest`, which the API answers with
Dapr's 400 ``ERR_MALFORMED_REQUEST`` (or the code it names).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.platform import errors
from tether.platform.components.keys import InvalidKeyError, KeyScheme
from tether.platform.errors import TetherError
from tether.platform.json_body import JsonBodyError, read_json
from tether.platform.state.store import MAX_TTL_SECONDS, DeleteOperation, SetOperation
from tether.platform.state.stores.common import is_key

FIRST_WRITE = "first-write"
LAST_WRITE = "last-write"
CONCURRENCY = ("", FIRST_WRITE, LAST_WRITE)
CONSISTENCY = ("", "eventual", "strong")
TTL = "ttlInSeconds"
CONTENT_TYPE = "contentType"
UPSERT = "upsert"
DELETE = "delete"
#: a whole number in ASCII (int() also takes other scripts' digits, "_" and spaces)
_INTEGER = re.compile(r"[-+]?[0-9]+")


class BadRequest(TetherError, ValueError):
    def __init__(self, message: str, code: str = errors.MALFORMED_REQUEST) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class SaveRequest:
    """One item of a save (or a transaction's upsert), checked and keyed for the store."""

    key: str
    op: SetOperation
    value: Any
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    key: str
    op: DeleteOperation
    metadata: Mapping[str, str] = field(default_factory=dict)


def parse_json(body: bytes) -> Any:
    try:
        return read_json(body)
    except JsonBodyError as exc:
        raise BadRequest(f"failed deserializing HTTP body: {exc}") from None


def encode_value(value: Any) -> bytes:
    """A JSON value as the bytes the store keeps (compact JSON text, UTF-8)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _text(value: Any, what: str, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string")
    return value


def metadata_of(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise BadRequest(f"{what} must be an object of strings")
    return dict(value)


def ttl_of(metadata: Mapping[str, str]) -> int | None:
    raw = metadata.get(TTL)
    if raw is None or raw == "":
        return None
    ttl = int(raw) if _INTEGER.fullmatch(raw) else 0
    if ttl == 0 or ttl < -1 or ttl > MAX_TTL_SECONDS:
        raise BadRequest(
            f"metadata {TTL} {raw!r} must be a number of seconds from 1 to {MAX_TTL_SECONDS} "
            "or -1 (never expire)"
        )
    return ttl


def options_of(value: Any, what: str) -> tuple[str, str]:
    """(concurrency, consistency), each "" when not given."""
    if value is None:
        return "", ""
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object")
    concurrency = _text(value.get("concurrency"), f"{what}.concurrency") or ""
    consistency = _text(value.get("consistency"), f"{what}.consistency") or ""
    check_options(concurrency, consistency, what)
    return concurrency, consistency


def check_options(concurrency: str, consistency: str, what: str = "options") -> None:
    if concurrency not in CONCURRENCY:
        raise BadRequest(f"{what}.concurrency {concurrency!r} must be first-write or last-write")
    if consistency not in CONSISTENCY:
        raise BadRequest(f"{what}.consistency {consistency!r} must be eventual or strong")


def store_key(keys: KeyScheme, key: Any, what: str) -> tuple[str, str]:
    """(the app's key, the store's key); a missing key, one with ``||`` or one no store can
    hold (NUL, a lone surrogate) is bad input."""
    if not isinstance(key, str) or not key:
        raise BadRequest(f'"key" is a required field ({what})')
    try:
        stored = keys.store_key(key)
    except InvalidKeyError as exc:
        raise BadRequest(str(exc)) from None
    if not is_key(stored):
        raise BadRequest(f"key {key!r} is not Unicode text without NUL ({what})")
    return key, stored


def save_request(
    item: Any, keys: KeyScheme, shared: Mapping[str, str], what: str
) -> SaveRequest:
    """One ``{key, value, etag, metadata, options}`` object; ``shared`` metadata (query
    parameters, a transaction's metadata) is merged over the item's own, as Dapr does."""
    item, key, stored, metadata, etag, first_write = _item(item, keys, shared, what)
    value = item.get("value")
    op = SetOperation(
        key=stored,
        value=encode_value(value),
        etag=etag,
        first_write=first_write,
        ttl_seconds=ttl_of(metadata),
        content_type=metadata.get(CONTENT_TYPE) or None,
    )
    return SaveRequest(key, op, value, metadata)


def delete_request(
    item: Any, keys: KeyScheme, shared: Mapping[str, str], what: str
) -> DeleteRequest:
    _, key, stored, metadata, etag, first_write = _item(item, keys, shared, what)
    op = DeleteOperation(key=stored, etag=etag, first_write=first_write)
    return DeleteRequest(key, op, metadata)


def _item(
    item: Any, keys: KeyScheme, shared: Mapping[str, str], what: str
) -> tuple[dict[str, Any], str, str, dict[str, str], str | None, bool]:
    """What a save and a delete item share: the object, its key (as given and as stored),
    its metadata (``shared`` merged over it), its ETag and whether it is a first write."""
    if not isinstance(item, dict):
        raise BadRequest(f"{what} must be an object")
    key, stored = store_key(keys, item.get("key"), what)
    metadata = metadata_of(item.get("metadata"), f"{what}.metadata")
    metadata.update(shared)
    concurrency, _ = options_of(item.get("options"), f"{what}.options")
    etag = _text(item.get("etag"), f"{what}.etag")
    return item, key, stored, metadata, etag or None, concurrency == FIRST_WRITE


def save_requests(body: bytes, keys: KeyScheme, shared: Mapping[str, str]) -> list[SaveRequest]:
    ttl_of(shared)  # checked even when no item uses it (or there are none)
    items = parse_json(body)
    if not isinstance(items, list):
        raise BadRequest("failed deserializing HTTP body: the body must be a JSON array")
    return [save_request(item, keys, shared, f"item {i}") for i, item in enumerate(items)]


@dataclass(frozen=True, slots=True)
class Transaction:
    operations: list[SaveRequest | DeleteRequest]
    metadata: Mapping[str, str]


def transaction(body: bytes, keys: KeyScheme, query_metadata: Mapping[str, str]) -> Transaction:
    obj = parse_json(body)
    if not isinstance(obj, dict):
        raise BadRequest("failed deserializing HTTP body: the body must be a JSON object")
    metadata = metadata_of(obj.get("metadata"), "metadata")
    metadata.update(query_metadata)
    ttl_of(metadata)  # checked even when no operation uses it (or there are none)
    raw_ops = obj.get("operations")
    if raw_ops is None:
        raw_ops = []
    if not isinstance(raw_ops, list):
        raise BadRequest("operations must be an array")
    operations: list[SaveRequest | DeleteRequest] = []
    for index, raw in enumerate(raw_ops):
        what = f"operations[{index}]"
        if not isinstance(raw, dict):
            raise BadRequest(f"{what} must be an object")
        kind = raw.get("operation")
        request = raw.get("request")
        if kind == UPSERT:
            operations.append(save_request(request, keys, metadata, f"{what}.request"))
        elif kind == DELETE:
            operations.append(delete_request(request, keys, metadata, f"{what}.request"))
        else:
            raise BadRequest(
                f"operation type {kind} not supported", errors.NOT_SUPPORTED_STATE_OPERATION
            )
    return Transaction(operations, metadata)


@dataclass(frozen=True, slots=True)
class BulkGet:
    keys: list[tuple[str, str]]


def bulk_get(body: bytes, keys: KeyScheme) -> BulkGet:
    obj = parse_json(body)
    if not isinstance(obj, dict):
        raise BadRequest("failed deserializing HTTP body: the body must be a JSON object")
    raw = obj.get("keys")
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise BadRequest("keys must be an array of strings")
    parallelism = obj.get("parallelism")
    if parallelism is not None and (isinstance(parallelism, bool) or not isinstance(
        parallelism, int
    )):
        raise BadRequest("parallelism must be a number")
    return BulkGet([store_key(keys, k, f"keys[{i}]") for i, k in enumerate(raw)])
