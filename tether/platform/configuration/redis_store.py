"""``configuration.redis``: string keys holding ``value||version`` (as Dapr's component),
changes from Redis keyspace notifications.

Keyspace notifications are off by default in Redis: the server needs
``notify-keyspace-events`` to include ``K`` and the events of the commands used (``KA`` for
all, or ``K$gx`` for string commands, DEL and expiry). A watch subscribes to
``__keyspace@<db>__:<key>`` (every key: the pattern ``__keyspace@<db>__:*``), and reads the
key again on each event, so it pushes the value as it is now.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence

import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from tether.platform.configuration.store import (
    ConfigurationItem,
    ConfigurationStore,
    ConfigurationStoreError,
    ConfigurationWatch,
    Items,
)

log = logging.getLogger(__name__)

SEPARATOR = "||"
#: events that do not change the value (a TTL set on the key)
_IGNORED_EVENTS = frozenset({"expire", "persist"})
_CONFIRM_TIMEOUT = 10.0


def parse_value(raw: bytes | str) -> ConfigurationItem:
    """``value||version`` -> item; a value without ``||`` has an empty version (as Dapr)."""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    parts = text.split(SEPARATOR)
    return ConfigurationItem(parts[0], parts[1] if len(parts) > 1 else "")


class RedisConfigurationStore(ConfigurationStore):
    def __init__(self, client: aioredis.Redis, db: int) -> None:
        self._client = client
        self._db = db
        self._warned = False

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
        await self._warn_without_notifications()
        watch = RedisWatch(self, self._client.pubsub(), f"__keyspace@{self._db}__:")
        try:
            await watch.open(keys)
        except RedisError as exc:
            await watch.close()
            raise ConfigurationStoreError(f"redis: {exc}") from exc
        return watch

    async def _warn_without_notifications(self) -> None:
        """Say so once when the server would send nothing (CONFIG may be forbidden)."""
        if self._warned:
            return
        try:
            found = await self._client.config_get("notify-keyspace-events")
        except RedisError:
            return
        flags = str(found.get("notify-keyspace-events", ""))
        if "K" not in flags:
            self._warned = True
            log.warning(
                "redis notify-keyspace-events is %r: configuration changes will not be "
                "seen; set it to include K (e.g. CONFIG SET notify-keyspace-events KA)", flags,
            )

    async def read(self, key: str) -> ConfigurationItem:
        raw = await self._client.get(key)
        return ConfigurationItem("") if raw is None else parse_value(raw)

    async def close(self) -> None:
        await self._client.aclose()


class RedisWatch(ConfigurationWatch):
    def __init__(self, store: RedisConfigurationStore, pubsub: PubSub, prefix: str) -> None:
        self._store = store
        self._pubsub = pubsub
        self._prefix = prefix
        self._keys: list[str] = []
        self._reconnected = False

    async def open(self, keys: Sequence[str]) -> None:
        self._keys = list(dict.fromkeys(keys))
        if keys:
            # exact channels: a key may contain glob characters
            await self._pubsub.subscribe(*(self._prefix + k for k in dict.fromkeys(keys)))
            expected = len(dict.fromkeys(keys))
        else:
            await self._pubsub.psubscribe(self._prefix + "*")
            expected = 1
        # wait for the server's confirmations: after them no change can be missed
        confirmed = 0
        while confirmed < expected:
            message = await self._pubsub.get_message(timeout=_CONFIRM_TIMEOUT)
            if message is None:
                raise ConfigurationStoreError("redis did not confirm the subscription")
            if message["type"] in ("subscribe", "psubscribe"):
                confirmed += 1
        # redis-py reconnects a dropped pub/sub connection and subscribes again by itself;
        # changes made while it was down were never notified, so note the reconnection
        # and send the current values then
        connection = self._pubsub.connection
        if connection is not None:
            connection.register_connect_callback(self._on_reconnect)

    def _on_reconnect(self, connection: object) -> None:
        self._reconnected = True

    async def changes(self) -> AsyncIterator[Items]:
        while True:
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0
                )
                if self._reconnected:
                    self._reconnected = False
                    current = await self._store.get(self._keys, {})
                    if current:
                        yield current
                if message is None:
                    continue
                channel = message["channel"]
                event = message["data"]
                channel = channel.decode() if isinstance(channel, bytes) else str(channel)
                event = event.decode() if isinstance(event, bytes) else str(event)
                if event in _IGNORED_EVENTS:
                    continue
                key = channel.removeprefix(self._prefix)
                item = await self._store.read(key)
            except RedisError as exc:
                raise ConfigurationStoreError(f"redis: {exc}") from exc
            yield {key: item}

    async def close(self) -> None:
        try:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        except RedisError:  # the connection is gone already
            pass
