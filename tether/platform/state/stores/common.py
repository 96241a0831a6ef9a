"""Small rules every store shares: what an operation may hold (checked before any write),
ETag format, TTL arithmetic, which values are JSON."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from tether.platform.json_body import has_lone_surrogate, is_unicode_text
from tether.platform.state.store import (
    MAX_TTL_SECONDS,
    ETagInvalidError,
    ETagMismatchError,
    InvalidOperationError,
    Operation,
    SetOperation,
)

#: every store's ETags are 32 lowercase hex digits (a random UUID): never reused after a
#: delete and re-create, so an old ETag can't match a new item (no ABA)
_ETAG = re.compile(r"[0-9a-f]{32}")

#: the item metadata key Dapr uses for an item's expiry time
TTL_EXPIRE_TIME = "ttlExpireTime"


def new_etag() -> str:
    return uuid.uuid4().hex


def etag_for(op: SetOperation) -> str:
    """The ETag a set gives its item: the caller's ``new_etag`` (which
    :func:`check_operations` checked) or a new one."""
    return op.new_etag or new_etag()


def check_operations(ops: Sequence[Operation]) -> None:
    """Refuse, before anything is written, what no store can apply: a key or content type
    that is not Unicode text without NUL (PostgreSQL's text refuses NUL, every UTF-8
    database a lone surrogate), a TTL that is neither -1 nor 1 to MAX_TTL_SECONDS
    (InvalidOperationError), an ETag no store produces (ETagInvalidError). Stores call
    it first, so a refused operation fails its whole transaction and changes nothing."""
    for op in ops:
        if not is_key(op.key):
            raise InvalidOperationError(f"key {op.key!r} is not Unicode text without NUL")
        check_etag(op.key, op.etag)
        if isinstance(op, SetOperation):
            check_etag(op.key, op.new_etag)
            check_ttl(op.ttl_seconds)
            if op.content_type is not None and not is_key(op.content_type):
                raise InvalidOperationError(
                    f"content type {op.content_type!r} of key {op.key!r} is not Unicode text "
                    "without NUL"
                )


def check_conflict(op: Operation, current_etag: str | None) -> None:
    """ETagMismatchError when ``op`` cannot apply to an item whose ETag is ``current_etag``
    (None: no live item): its ETag differs, or a first-write set finds the key taken."""
    if op.etag is not None:
        if current_etag != op.etag:
            raise ETagMismatchError(op.key)
    elif op.first_write and isinstance(op, SetOperation) and current_etag is not None:
        raise ETagMismatchError(op.key, f"key {op.key!r} already exists (first-write)")


def is_key(key: str) -> bool:
    """Whether ``key`` can be a key in every store: Unicode text without NUL."""
    return "\x00" not in key and is_unicode_text(key)


def check_etag(key: str, etag: str | None) -> None:
    """An ETag this store could never have produced is a client error, not a conflict."""
    if etag is not None and not _ETAG.fullmatch(etag):
        raise ETagInvalidError(key, etag)


def check_ttl(ttl_seconds: int | None) -> None:
    if ttl_seconds is not None and ttl_seconds != -1 and not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise InvalidOperationError(
            f"ttl_seconds must be -1 or from 1 to {MAX_TTL_SECONDS}, not {ttl_seconds}"
        )


def expiry(ttl_seconds: int | None, default_ttl: int | None = None, now: float | None = None
           ) -> float | None:
    """The Unix time an item written now expires at; None for never (-1 or no TTL)."""
    ttl = default_ttl if ttl_seconds is None else ttl_seconds
    if ttl is None or ttl == -1:
        return None
    return (time.time() if now is None else now) + ttl


def expire_time_text(expires_at: float) -> str:
    """RFC 3339 in UTC, as Dapr reports ``ttlExpireTime``."""
    return datetime.fromtimestamp(expires_at, UTC).isoformat().replace("+00:00", "Z")


def item_metadata(expires_at: float | None) -> dict[str, str]:
    return {} if expires_at is None else {TTL_EXPIRE_TIME: expire_time_text(expires_at)}


def json_text(value: bytes) -> str | None:
    """The value as text when it is a JSON document the SQL stores can query, else None.

    Strict JSON only (no NaN), valid UTF-8, no lone surrogate (no database takes one) and
    no ``\\u0000`` escape (PostgreSQL's jsonb refuses it), so a value kept as JSON text
    always round-trips to the same bytes.
    """
    if not value or value[:1] not in b'{["-0123456789tfn \t\r\n':
        return None
    try:
        text = value.decode("utf-8")
        parsed = json.loads(text, parse_constant=_refuse_constant)
    except (UnicodeError, ValueError, RecursionError):
        return None
    if "\\u0000" in text or has_lone_surrogate(value, parsed):
        return None
    return text


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")
