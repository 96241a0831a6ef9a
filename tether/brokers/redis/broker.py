"""The Redis broker: the connection, topic metadata, publishing, and the subscriptions."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from tether.brokers.base import (
    DEFAULT_PARTITIONS,
    Broker,
    BrokerClosedError,
    BrokerConfigError,
    BrokerUnavailableError,
    SubscribeOptions,
)
from tether.brokers.log.broker import partition_for
from tether.brokers.redis.codec import to_redis_fields
from tether.brokers.redis.errors import UNAVAILABLE
from tether.brokers.redis.keys import Keys
from tether.brokers.redis.scripts import LIVE_MEMBERS, Scripts
from tether.brokers.redis.settings import parse_url
from tether.brokers.redis.subscription import RedisSubscription
from tether.brokers.redis.wire import pack_xadd, xadd_head
from tether.platform import env
from tether.platform.aio import Grouped
from tether.platform.events import CloudEvent

#: events per XADD burst written and answered in one round trip
PUBLISH_CHUNK = 1000
#: connections per broker; more concurrent calls wait for one to be free
MAX_CONNECTIONS = 100


class RedisBroker(Broker):
    def __init__(self, url: str) -> None:
        self._client_url, self.settings, self.url = parse_url(url)
        self.keys = Keys(self.settings.namespace)
        self._client: aioredis.Redis | None = None
        self._scripts: Scripts | None = None
        self._partitions: dict[str, int] = {}
        self._xadd_heads: dict[str, list[tuple[bytes, int]]] = {}
        self._round_robin = itertools.count()
        self._subscriptions: list[RedisSubscription] = []
        # group commit: concurrent publishes (any topics) go out as one pipeline of XADDs
        self._publishes: Grouped[tuple[str, CloudEvent], None] = Grouped(
            self._publish_group, max_group=PUBLISH_CHUNK, grouping=env.group_commit()
        )

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise self._not_connected()
        return self._client

    @property
    def scripts(self) -> Scripts:
        if self._scripts is None:
            raise self._not_connected()
        return self._scripts

    def _not_connected(self) -> BrokerClosedError:
        return BrokerClosedError(f"broker {self.url} is not connected (closed or never opened)")

    def deadline(self) -> asyncio.Timeout:
        """A bound on one Redis call: a dead server or a half-open socket must not hang a
        member longer than a session (the client has no socket timeout: per-reply timers
        cost more than the commands on the hot path)."""
        return asyncio.timeout(self.settings.session_timeout + self.settings.block)

    async def connect(self) -> None:
        if self._client is not None:
            return
        # a blocking pool: past max_connections a publish waits for a connection (redis-py's
        # default pool raises "Too many connections" once 100 calls are in flight)
        pool = aioredis.BlockingConnectionPool.from_url(
            self._client_url,
            socket_connect_timeout=min(5.0, self.settings.session_timeout),
            max_connections=MAX_CONNECTIONS,
        )
        client = aioredis.Redis.from_pool(pool)  # the client closes the pool
        try:
            async with self.deadline():
                await client.ping()
        except UNAVAILABLE as exc:
            await client.aclose()
            raise BrokerUnavailableError(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._scripts = Scripts.register(client)
        self._client = client

    async def close(self, drain_timeout: float = 30.0) -> None:
        if self._client is None:
            return
        await self._publishes.drain()
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.close(drain_timeout) for s in subscriptions))
        client, self._client, self._scripts = self._client, None, None
        await client.aclose()

    async def create_topic(self, topic: str, partitions: int = DEFAULT_PARTITIONS) -> None:
        if partitions < 1:
            raise BrokerConfigError("partitions must be at least 1")
        self._partitions[topic] = await self._ensure_topic(topic, partitions)

    async def partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = await self._ensure_topic(topic, self.settings.default_partitions)
            self._partitions[topic] = count
        return count

    async def _ensure_topic(self, topic: str, partitions: int) -> int:
        """Create the topic's metadata unless it exists; return its partition count."""
        key = self.keys.partitions(topic)
        pipe = self.client.pipeline(transaction=False)
        pipe.set(key, partitions, nx=True)
        pipe.get(key)
        try:
            async with self.deadline():
                _, stored = await pipe.execute()
        except UNAVAILABLE as exc:
            raise BrokerUnavailableError(f"Redis at {self.url}: {exc}") from exc
        return int(stored)

    async def publish(self, topic: str, event: CloudEvent) -> None:
        self.client  # noqa: B018 - raises BrokerClosedError when not connected
        await self._publishes.submit((topic, event))

    async def _publish_group(
        self, requests: Sequence[tuple[str, CloudEvent]]
    ) -> list[BaseException | None]:
        """Publishes made concurrently, as one pipeline of XADDs whose replies are read one
        by one: an event that cannot be encoded, a topic whose metadata cannot be read or a
        stream that refuses its XADD fails only its own publish; a lost connection all."""
        results: list[BaseException | None] = [None] * len(requests)
        commands: list[bytes] = []
        members: list[int] = []
        for index, (topic, event) in enumerate(requests):
            try:
                heads = await self._heads(topic)
                head, fixed = heads[
                    partition_for(event.partitionkey, len(heads), self._round_robin)
                ]
                commands.append(pack_xadd(head, fixed, to_redis_fields(event)))
            except UNAVAILABLE as exc:
                results[index] = self._publish_error(topic, exc)
            except Exception as exc:  # this event's own (it cannot be encoded)
                results[index] = exc
            else:
                members.append(index)
        if not commands:
            return results
        try:
            replies = await self.send_packed(b"".join(commands), len(commands), each=True)
        except UNAVAILABLE as exc:
            for index in members:
                results[index] = self._publish_error(requests[index][0], exc)
            return results
        for index, reply in zip(members, replies, strict=True):
            if isinstance(reply, ResponseError):
                results[index] = self._publish_error(requests[index][0], reply)
        return results

    def _publish_error(self, topic: str, exc: BaseException) -> BrokerUnavailableError:
        error = BrokerUnavailableError(f"publish to {topic!r} on {self.url}: {exc}")
        error.__cause__ = exc
        return error

    async def _heads(self, topic: str) -> list[tuple[bytes, int]]:
        """The packed XADD head of each of the topic's partition streams."""
        heads = self._xadd_heads.get(topic)
        if heads is None:
            maxlen = self.settings.maxlen
            heads = self._xadd_heads[topic] = [
                xadd_head(self.keys.stream(topic, partition), maxlen)
                for partition in range(await self.partition_count(topic))
            ]
        return heads

    async def publish_batch(self, topic: str, events: Sequence[CloudEvent]) -> None:
        self.client  # noqa: B018 - raises BrokerClosedError when not connected
        if not events:
            return
        heads = await self._heads(topic)
        count, round_robin = len(heads), self._round_robin
        try:
            for start in range(0, len(events), PUBLISH_CHUNK):
                chunk = events[start : start + PUBLISH_CHUNK]
                commands = []
                for event in chunk:
                    head, fixed = heads[partition_for(event.partitionkey, count, round_robin)]
                    commands.append(pack_xadd(head, fixed, to_redis_fields(event)))
                await self.send_packed(b"".join(commands), len(chunk))
        except UNAVAILABLE as exc:
            raise self._publish_error(topic, exc) from exc

    async def send_packed(self, payload: bytes, replies: int, *, each: bool = False) -> list[Any]:
        """Write commands already in the Redis protocol (see :mod:`.wire`) on one connection
        and read their replies. An error reply raises, or with ``each`` takes its command's
        place in the returned replies (the others are still read: the connection stays in
        step)."""
        pool = self.client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        answers: list[Any] = []
        try:
            async with self.deadline():
                await connection.send_packed_command(payload)
                for _ in range(replies):
                    try:
                        answers.append(await connection.read_response())
                    except ResponseError as exc:
                        if not each:
                            raise
                        answers.append(exc)
        except BaseException:
            # replies may be left unread: the connection cannot be reused
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)
        return answers

    async def live_members(self, topic: str, group: str) -> int | None:
        # scores are expiry times on the server's clock (scripts.HEARTBEAT)
        try:
            async with self.deadline():
                count = await self.client.eval(LIVE_MEMBERS, 1, self.keys.members(topic, group))
        except UNAVAILABLE as exc:
            raise BrokerUnavailableError(f"cannot reach Redis at {self.url}: {exc}") from exc
        return int(count)

    def subscribe(
        self, topic: str, group: str, options: SubscribeOptions | None = None
    ) -> RedisSubscription:
        self.client  # noqa: B018 - raises BrokerClosedError when not connected
        subscription = RedisSubscription(self, topic, group, options)
        self._subscriptions = [s for s in self._subscriptions if not s.closed]
        self._subscriptions.append(subscription)
        return subscription
