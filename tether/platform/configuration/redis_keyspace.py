"""One Redis pub/sub connection carrying the keyspace channels of every watch of a store.

A watch per connection ran redis-py's pool dry at 100 subscriptions ("Too many
connections", for the watches and every GET after them); here a store has one listener, and
each watch adds its channels to it. A channel shared by several watches is subscribed once
and unsubscribed when its last watch leaves. One task reads the connection and hands each
key event to the watches of its channel; the watches read the values themselves.

redis-py reconnects a dropped pub/sub connection and subscribes again by itself; changes
made meanwhile were never notified, so the store's hook runs (it turns the notifications on
again: a restarted server lost them) and the watches are told (``reconnected``) and read
their keys again. When the connection cannot be re-established the listener fails every watch
(``failed``), and the store opens a new listener for the watches that come back.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from redis.asyncio.client import PubSub
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tether.platform.aio import cancel_task
from tether.platform.configuration.store import ConfigurationStoreError

log = logging.getLogger(__name__)

#: events that do not change the value (a TTL set on the key)
IGNORED_EVENTS = frozenset({"expire", "persist"})
#: how long the server may take to confirm a subscription
CONFIRM_TIMEOUT = 10.0


class KeyWatcher(Protocol):
    """What the listener tells a watch."""

    def changed(self, key: str) -> None:
        """``key`` had an event: its value may have changed."""

    def reconnected(self) -> None:
        """The connection was re-established: events may have been missed."""

    def failed(self, error: Exception) -> None:
        """The connection is lost for good: no more events will come."""


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class KeyspaceListener:
    """Keyspace events of one Redis database, for any number of watches."""

    def __init__(
        self, pubsub: PubSub, db: int, on_reconnect: Callable[[], Awaitable[None]]
    ) -> None:
        self._pubsub = pubsub
        #: awaited when the connection is re-established, before the watches are told
        self._reconnect_hook = on_reconnect
        self._prefix = f"__keyspace@{db}__:"
        self._pattern = self._prefix + "*"
        #: exact channel -> the watches of that key
        self._channels: dict[str, set[KeyWatcher]] = {}
        #: the watches of every key (the pattern)
        self._every: set[KeyWatcher] = set()
        #: what each watch listens to: its channels, or None for every key
        self._watched: dict[KeyWatcher, list[str] | None] = {}
        #: (kind, name) -> the confirmations awaited, in the order the commands were sent
        self._confirms: dict[tuple[str, str], deque[asyncio.Future[None]]] = {}
        self._lock = asyncio.Lock()  # one (UN)SUBSCRIBE at a time: confirmations stay in order
        self._reader: asyncio.Task[None] | None = None
        self.error: Exception | None = None

    async def add(self, watcher: KeyWatcher, keys: Sequence[str]) -> None:
        """Hand the events of ``keys`` (every key when empty) to ``watcher`` from now on;
        returns once the server has confirmed, so no later change is missed."""
        waits: list[asyncio.Future[None]] = []
        try:
            async with self._lock:
                if self.error is not None:
                    raise ConfigurationStoreError(f"redis: {self.error}")
                if keys:
                    channels = [self._prefix + k for k in dict.fromkeys(keys)]
                    self._watched[watcher] = channels
                    new = [c for c in channels if not self._channels.get(c)]
                    for channel in channels:
                        self._channels.setdefault(channel, set()).add(watcher)
                    waits = await self._send("subscribe", channels, new)
                else:
                    self._watched[watcher] = None
                    new = [] if self._every else [self._pattern]
                    self._every.add(watcher)
                    waits = await self._send("psubscribe", [self._pattern], new)
                self._start_reader()
            await asyncio.wait_for(asyncio.shield(asyncio.gather(*waits)), CONFIRM_TIMEOUT)
        except (RedisConnectionError, RedisTimeoutError, TimeoutError) as exc:
            # the connection is gone (or stuck): every watch must move to a new listener
            await self.remove(watcher)
            await self._break(exc)
            problem = f"redis: {exc}" if isinstance(exc, RedisError) else (
                "redis did not confirm the subscription")
            raise ConfigurationStoreError(problem) from exc
        except RedisError as exc:  # the server refused this subscription
            await self.remove(watcher)
            raise ConfigurationStoreError(f"redis: {exc}") from exc
        except BaseException:
            await self.remove(watcher)
            raise

    async def _send(
        self, kind: str, names: list[str], new: list[str]
    ) -> list[asyncio.Future[None]]:
        """Subscribe (``kind``) to the ``new`` names; the confirmations to wait for: one per
        new name, and for the others the last one still awaited (a channel another watch
        subscribed a moment ago). Each is registered before the command goes out, since
        the reader may see the server's answer before this coroutine resumes."""
        loop = asyncio.get_running_loop()
        fresh = set(new)
        waits = []
        for name in names:
            queue = self._confirms.get((kind, name))
            if name in fresh:
                queue = self._confirms.setdefault((kind, name), deque())
                queue.append(loop.create_future())
            if queue:
                waits.append(queue[-1])
        if not new:
            return waits
        send = self._pubsub.subscribe if kind == "subscribe" else self._pubsub.psubscribe
        try:
            await send(*new)
        except BaseException:  # refused or not sent: no answer will come for these
            for name in new:
                queue = self._confirms.get((kind, name))
                if queue:
                    queue.pop().cancel()
                    if not queue:
                        del self._confirms[(kind, name)]
            raise
        return waits

    async def remove(self, watcher: KeyWatcher) -> None:
        """Stop handing events to ``watcher``; channels nobody watches any more are
        unsubscribed (a lost connection is ignored: nothing listens there any more)."""
        async with self._lock:
            if watcher not in self._watched:
                return
            channels = self._watched.pop(watcher)
            try:
                if channels is None:
                    self._every.discard(watcher)
                    if not self._every and self.error is None:
                        await self._pubsub.punsubscribe(self._pattern)
                    return
                unused = []
                for channel in channels:
                    watchers = self._channels.get(channel, set())
                    watchers.discard(watcher)
                    if not watchers:
                        self._channels.pop(channel, None)
                        unused.append(channel)
                if unused and self.error is None:
                    await self._pubsub.unsubscribe(*unused)
            except RedisError as exc:
                log.debug("redis keyspace listener: unsubscribing failed: %s", exc)

    def _start_reader(self) -> None:
        if self._reader is None:
            connection = self._pubsub.connection
            if connection is not None:
                connection.register_connect_callback(self._on_reconnect)
            self._reader = asyncio.create_task(self._read(), name="redis keyspace listener")

    async def _on_reconnect(self, connection: object) -> None:
        await self._reconnect_hook()
        for watcher in list(self._watched):
            watcher.reconnected()

    async def _read(self) -> None:
        try:
            while True:
                message = await self._pubsub.get_message(timeout=None)
                if message is not None:
                    self._dispatch(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the connection is lost for good (or a bug): fail the watches
            log.warning("redis keyspace listener stopped: %s", exc)
            self._fail(exc)
            await self._close_pubsub()

    async def _break(self, error: Exception) -> None:
        """Give up on this connection: fail every watch, stop reading, close it."""
        if self.error is None:
            self._fail(error)
        if self._reader is not asyncio.current_task():
            await cancel_task(self._reader)
        await self._close_pubsub()

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = _text(message["type"])
        channel = _text(message["channel"])
        if kind in ("subscribe", "psubscribe"):
            queue = self._confirms.get((kind, channel))
            if queue:  # empty after a reconnection's own re-subscribe
                future = queue.popleft()
                if not future.done():
                    future.set_result(None)
                if not queue:
                    del self._confirms[(kind, channel)]
            return
        if kind not in ("message", "pmessage") or _text(message["data"]) in IGNORED_EVENTS:
            return
        key = channel.removeprefix(self._prefix)
        watchers = self._every if kind == "pmessage" else self._channels.get(channel, ())
        for watcher in list(watchers):
            watcher.changed(key)

    def _fail(self, error: Exception) -> None:
        self.error = error
        for queue in self._confirms.values():
            for future in queue:
                if not future.done():
                    future.set_exception(ConfigurationStoreError(f"redis: {error}"))
                    future.exception()  # retrieved: a watch that gave up waiting is fine
        self._confirms.clear()
        for watcher in list(self._watched):
            watcher.failed(error)

    async def _close_pubsub(self) -> None:
        try:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        except RedisError:  # the connection is gone already
            pass

    async def close(self) -> None:
        """Stop reading and release the connection (the watches get no more events)."""
        await cancel_task(self._reader)
        self._reader = None
        await self._close_pubsub()
