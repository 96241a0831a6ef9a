"""The state store contract every ``state.*`` backend implements (docs/state.md).

Values are opaque bytes here: the HTTP layer decides how a JSON value or a base64 value is
encoded. Keys arrive already prefixed (``keyPrefix``), so a store never knows app ids. A
key (and a content type) is Unicode text without NUL, which every database can hold; a TTL
is -1 or 1 to ``MAX_TTL_SECONDS``. A write outside these rules is refused before anything
is written (InvalidOperationError), and a read of such a key finds nothing.

ETags are opaque strings a store produces; a write or delete that carries one succeeds
only when it still matches (409 at the API). A caller may choose the new ETag of a set
itself (``SetOperation.new_etag``, in the stores' format): that is how an event written in
the same transaction can name the ETag the write will have. ``first_write`` without an
ETag means "only if the key does not exist yet", as Dapr's first-write concurrency does.

A transaction applies all its operations and its outbox records atomically or none of them:
that is how an event and the state change it announces are never separated
(Dapr's transactional outbox).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.platform.errors import TetherError

# Dapr's feature names, as /v1.0/metadata lists them for a state store
FEATURE_ETAG = "ETAG"
FEATURE_TRANSACTIONAL = "TRANSACTIONAL"
FEATURE_TTL = "TTL"
FEATURE_QUERY_API = "QUERY_API"

#: the largest TTL: Dapr's (components-contrib ``ParseTTL`` refuses more than int32 seconds,
#: about 68 years); every store's expiry arithmetic and date types hold it
MAX_TTL_SECONDS = 2**31 - 1


class StateStoreError(TetherError):
    """The store failed (connection lost, server error): a 500 at the API."""


class ETagMismatchError(StateStoreError):
    """The ETag given no longer matches, or first-write found the key present: a 409."""

    def __init__(self, key: str, message: str | None = None) -> None:
        super().__init__(message or f"possible etag mismatch for key {key!r}")
        self.key = key


class InvalidOperationError(StateStoreError, ValueError):
    """An operation outside the contract (see :func:`~.stores.common.check_operations`): a
    key or content type a database cannot hold, a TTL out of range. Every store refuses it
    before writing anything, so a transaction holding one writes nothing: a 400."""


class ETagInvalidError(InvalidOperationError):
    """The ETag is not one this store could have produced: a 400 (ERR_STATE_SAVE/DELETE)."""

    def __init__(self, key: str, etag: str) -> None:
        super().__init__(f"invalid etag {etag!r} for key {key!r}")
        self.key = key
        self.etag = etag


class QueryNotSupportedError(StateStoreError):
    """The store has no query API (Dapr answers 500 ERR_NOT_SUPPORTED_STATE_OPERATION)."""


class InvalidQueryError(StateStoreError):
    """A query the store cannot run (bad filter, unknown operator): a 400."""


@dataclass(frozen=True, slots=True)
class StateItem:
    key: str
    value: bytes
    etag: str
    #: the store's own metadata for the item (e.g. ``ttlExpireTime`` as RFC 3339)
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetOperation:
    key: str
    value: bytes
    etag: str | None = None
    first_write: bool = False
    #: None: no expiry; 1 to MAX_TTL_SECONDS: the entry disappears after so many seconds;
    #: -1: never expires even if the store has a default TTL (Dapr's convention)
    ttl_seconds: int | None = None
    #: the caller's content type for the value, kept for the query API and change feed
    content_type: str | None = None
    #: the ETag the item gets (32 lowercase hex digits, else ETagInvalidError); None: the
    #: store makes one. Lets a caller put the new ETag into outbox records built before the
    #: transaction. Must be fresh (e.g. ``uuid4().hex``): reusing one would defeat ETags.
    new_etag: str | None = None


@dataclass(frozen=True, slots=True)
class DeleteOperation:
    key: str
    etag: str | None = None
    first_write: bool = False


Operation = SetOperation | DeleteOperation


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """An event to publish once the transaction it belongs to has committed.

    ``event`` is the encoded CloudEvent (JSON format); the relay publishes it to
    ``pubsub``/``topic`` and then deletes the record. ``id`` is unique per record (the
    CloudEvent id does nicely) so a relay that crashed after publishing can be told
    apart from a new record.
    """

    id: str
    pubsub: str
    topic: str
    event: bytes


@dataclass(frozen=True, slots=True)
class Query:
    """Dapr's query API body, already parsed as JSON (``filter``, ``sort``, ``page``)."""

    filter: Mapping[str, Any] | None = None
    sort: Sequence[Mapping[str, Any]] = ()
    limit: int | None = None
    token: str | None = None
    #: only keys starting with this prefix (the keyPrefix of the calling app)
    key_prefix: str = ""


@dataclass(frozen=True, slots=True)
class QueryResult:
    items: Sequence[StateItem]
    #: pass back as ``Query.token`` for the next page; None when there is none
    token: str | None = None


class StateStore(ABC):
    """One open state store. Every method may raise StateStoreError."""

    #: the Dapr feature names this store supports
    features: frozenset[str] = frozenset()

    @abstractmethod
    async def get(self, key: str) -> StateItem | None:
        """The live (unexpired) item, or None."""

    async def bulk_get(self, keys: Sequence[str]) -> list[StateItem | None]:
        """One result per key, in order; stores override this with one round trip."""
        return [await self.get(key) for key in keys]

    async def set(self, op: SetOperation) -> str:
        """Write one item and return its new ETag; ETagMismatchError on a conflict.

        A transaction of one by default; stores with a cheaper single write override it."""
        etag = (await self.transact([op]))[0]
        assert etag is not None  # a set always has one
        return etag

    async def delete(self, op: DeleteOperation) -> None:
        """Delete one item (absent is fine unless an ETag was given); ETagMismatchError on
        a conflict. A transaction of one by default."""
        await self.transact([op])

    @abstractmethod
    async def transact(
        self, ops: Sequence[Operation], outbox: Sequence[OutboxRecord] = ()
    ) -> list[str | None]:
        """Apply every operation and store every outbox record, or nothing (a conflict
        raises ETagMismatchError and leaves the store unchanged).

        Returns one entry per operation, in order: the new ETag of a set (its ``new_etag``
        when given), None for a delete."""

    @abstractmethod
    async def outbox_pending(self, limit: int) -> list[OutboxRecord]:
        """Outbox records not yet published, oldest first."""

    @abstractmethod
    async def outbox_done(self, ids: Sequence[str]) -> None:
        """Forget outbox records once published (unknown ids are ignored)."""

    async def query(self, query: Query) -> QueryResult:
        raise QueryNotSupportedError("this state store does not support the query API")

    @abstractmethod
    async def close(self) -> None:
        """Release connections; the store is not used afterwards."""
