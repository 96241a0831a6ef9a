"""Small rules every store shares: ETag format, TTL arithmetic, which values are JSON."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import UTC, datetime

from tether.platform.state.store import ETagInvalidError, SetOperation

#: every store's ETags are 32 lowercase hex digits (a random UUID): never reused after a
#: delete and re-create, so an old ETag can't match a new item (no ABA)
_ETAG = re.compile(r"[0-9a-f]{32}")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")

#: the item metadata key Dapr uses for an item's expiry time
TTL_EXPIRE_TIME = "ttlExpireTime"


def new_etag() -> str:
    return uuid.uuid4().hex


def etag_for(op: SetOperation) -> str:
    """The ETag a set gives its item: the caller's ``new_etag`` (checked, so the store never
    holds an ETag it would call invalid) or a new one."""
    if op.new_etag is None:
        return new_etag()
    check_etag(op.key, op.new_etag)
    return op.new_etag


def check_etag(key: str, etag: str | None) -> None:
    """An ETag this store could never have produced is a client error, not a conflict."""
    if etag is not None and not _ETAG.fullmatch(etag):
        raise ETagInvalidError(key, etag)


def check_ttl(ttl_seconds: int | None) -> None:
    if ttl_seconds is not None and ttl_seconds != -1 and ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds must be a positive number or -1, not {ttl_seconds}")


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

    Strict JSON only (no NaN), valid UTF-8, and no ``\\u0000`` escape (PostgreSQL's jsonb
    refuses it), so a value kept as JSON text always round-trips to the same bytes.
    """
    if not value or value[:1] not in b'{["-0123456789tfn \t\r\n':
        return None
    try:
        text = value.decode("utf-8")
        parsed = json.loads(text, parse_constant=_refuse_constant)
        # lone surrogates (\ud800) parse in Python but no database accepts them; the
        # costly check only runs when the text has a surrogate escape at all
        if _SURROGATE_ESCAPE.search(text):
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError):
        return None
    if "\\u0000" in text:
        return None
    return text


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")
