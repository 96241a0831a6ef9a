"""``configuration.redis``: string keys holding ``value||version`` (as Dapr's component),
changes from Redis keyspace notifications.

Keyspace notifications are off in a Redis as installed. As Dapr's component does, the store
turns them on when it starts: it adds the flags it needs (``K$gx``: keyspace events of string
commands, of DEL, RENAME and EXPIRE, and of expiry) to the server's ``notify-keyspace-events``,
keeping the flags already set. A server that refuses ``CONFIG`` (managed Redis, an ACL) gets
one warning at start: subscriptions then see only what the server is set up to send.

Every watch of the store shares one pub/sub connection (:mod:`.redis_keyspace`); a watch
subscribes to ``__keyspace@<db>__:<key>`` (every key: the pattern ``__keyspace@<db>__:*``)
and reads the key again on each event, so it pushes the value as it is now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from tether.platform.configuration.redis_keyspace import KeyspaceListener
from tether.platform.configuration.store import (
    ConfigurationItem,
    ConfigurationStore,
    ConfigurationStoreError,
    ConfigurationWatch,
    Items,
)

log = logging.getLogger(__name__)

SEPARATOR = "||"
NOTIFY = "notify-keyspace-events"
#: the notification flags a watch needs; ``A`` in the server's flags stands for g$lshzxetd
NEEDED_FLAGS = "K$gx"
_ALL_FLAGS = "g$lshzxetd"


def parse_value(raw: bytes | str) -> ConfigurationItem:
    """``value||version`` -> item; a value without ``||`` has an empty version (as Dapr)."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    parts = text.split(SEPARATOR)
    return ConfigurationItem(parts[0], parts[1] if len(parts) > 1 else "")


def with_needed_flags(flags: str) -> str:
    """The server's ``notify-keyspace-events`` flags plus the ones a watch needs."""
    have = set(flags) | (set(_ALL_FLAGS) if "A" in flags else set())
    return flags + "".join(f for f in NEEDED_FLAGS if f not in have)


class RedisConfigurationStore(ConfigurationStore):
    def __init__(self, client: aioredis.Redis, db: int, address: str) -> None:
        self._client = client
        self._db = db
        self._address = address
        self._listener: KeyspaceListener | None = None
        self._warned = False

    async def start(self) -> None:
        """Check that Redis answers (ConfigurationStoreError otherwise) and turn on the
        keyspace notifications the watches need."""
        try:
            await self._client.ping()
        except RedisError as exc:
            raise ConfigurationStoreError(
                f"cannot reach Redis at {self._address}: {exc}"
            ) from exc
        await self._enable_notifications()

    async def _enable_notifications(self) -> None:
        """Add the flags the watches need to the server's; again on every reconnection, as a
        restarted server has its configured flags back. A refusal is one warning per store."""
        try:
            found = await self._client.config_get(NOTIFY)
            flags = str(found.get(NOTIFY, ""))
            wanted = with_needed_flags(flags)
            if wanted != flags:
                await self._client.config_set(NOTIFY, wanted)
        except ResponseError as exc:  # refused (CONFIG disabled or not allowed)
            if not self._warned:
                self._warned = True
                log.warning(
                    "configuration.redis at %s: cannot turn on keyspace notifications (%s); "
                    "configuration updates will not arrive unless the server's %s already "
                    "includes %s", self._address, exc, NOTIFY, NEEDED_FLAGS,
                )
        except RedisError as exc:  # not reachable now: the watch that follows fails and retries
            log.debug("configuration.redis at %s: cannot check %s: %s", self._address, NOTIFY,
                      exc)

    async def get(self, keys: Sequence[str], metadata: Mapping[str, str]) -> Items:
        try:
            if not keys:
                found = [k async for k in self._client.scan_iter(_type="string")]
                keys = sorted({k.decode() if isinstance(k, bytes) else str(k) for k in found})
            values = await self._client.mget(list(keys)) if keys else []
        except RedisError as exc:
            raise ConfigurationStoreError(f"redis: {exc}") from exc
        return {k: parse_value(v) for k, v in zip(keys, values, strict=True) if v is not None}

    async def watch(self, keys: Sequence[str], metadata: Mapping[str, str]) -> ConfigurationWatch:
        listener = self._listener
        if listener is None or listener.error is not None:
            # the first watch, or the connection of the previous listener is lost for good
            # (the server may have restarted, with notifications off)
            listener = self._listener = KeyspaceListener(
                self._client.pubsub(), self._db, self._enable_notifications
            )
            await self._enable_notifications()
        watch = RedisWatch(self, listener, list(dict.fromkeys(keys)))
        await listener.add(watch, watch.keys)
        return watch

    async def read(self, key: str) -> ConfigurationItem:
        raw = await self._client.get(key)
        return ConfigurationItem("") if raw is None else parse_value(raw)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            await listener.close()
        await self._client.aclose()


class RedisWatch(ConfigurationWatch):
    """The changed keys of one watch, read when its consumer asks for the next change: a key
    that changes several times meanwhile is read (and pushed) once, as it is now."""

    def __init__(
        self, store: RedisConfigurationStore, listener: KeyspaceListener, keys: list[str]
    ) -> None:
        self._store = store
        self._listener = listener
        self.keys = keys
        self._pending: dict[str, None] = {}  # changed keys, in order
        self._reread = False
        self._error: Exception | None = None
        self._closed = False
        self._wake = asyncio.Event()

    def changed(self, key: str) -> None:
        self._pending[key] = None
        self._wake.set()

    def reconnected(self) -> None:
        self._reread = True
        self._wake.set()

    def failed(self, error: Exception) -> None:
        self._error = error
        self._wake.set()

    async def changes(self) -> AsyncIterator[Items]:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            try:
                if self._reread:
                    self._reread = False
                    current = await self._store.get(self.keys, {})
                    for key in current:
                        self._pending.pop(key, None)
                    if current:
                        yield current
                while self._pending and not self._closed:
                    key = next(iter(self._pending))
                    del self._pending[key]
                    item = await self._store.read(key)
                    yield {key: item}
            except RedisError as exc:
                raise ConfigurationStoreError(f"redis: {exc}") from exc
            if self._error is not None:
                raise ConfigurationStoreError(f"redis: {self._error}")

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        await self._listener.remove(self)
