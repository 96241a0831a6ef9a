"""``redis://`` and ``rediss://``: the broker over Redis Streams consumer groups.

A stream is not partitioned by key, so a topic is N streams (``<ns>:<topic>:p<i>``); an
event's ``partitionkey`` picks one with the same crc32 hash as every other backend. Members
of a group split the streams through leases (one live owner per stream and group); only the
owner reads a stream, with XREADGROUP under its own consumer name, so the shared
:class:`Subscription` engine gives one active handler per key. A new owner first takes over
every entry still pending in the group (XAUTOCLAIM) and delivers those before new ones, so a
key's order survives a crash or a rebalance. Redis keeps each entry's delivery count, which
drives dead-lettering across crashes. The design is written up in docs/brokers-redis.md.

URL: ``redis://[:password@]host:port/db?partitions=4&session_timeout=10&heartbeat_interval=1``
with optional ``block`` (seconds an idle XREADGROUP waits), ``namespace`` (key prefix,
default ``tether``) and ``maxlen`` (approximate stream trimming, off by default). Any other
query option goes to redis-py as it is (``socket_timeout``, ``ssl_cert_reqs``, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError

from tether.brokers.base import (
    DEFAULT_PARTITIONS,
    Broker,
    BrokerClosedError,
    BrokerConfigError,
    BrokerUnavailableError,
    SubscribeOptions,
    new_member_id,
)
from tether.brokers.log.broker import partition_for
from tether.brokers.subscription import Record, Subscription
from tether.platform.events import CloudEvent
from tether.platform.events.redis import RedisFields, from_redis_fields, to_redis_fields

log = logging.getLogger(__name__)

#: entries read per XREADGROUP / XAUTOCLAIM call (capped by the subscription's max_in_flight)
FETCH_BATCH = 1000
#: how long a failing Redis call waits before it is tried again
RETRY_DELAY = 0.5
#: how often a member retries to claim partitions another member still holds
CLAIM_RETRY = 0.1


# --- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RedisSettings:
    default_partitions: int = DEFAULT_PARTITIONS
    #: a member silent this long is presumed dead; also the lifetime of a partition lease
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    #: the longest an idle XREADGROUP blocks (new entries wake it at once)
    block: float = 0.2
    namespace: str = "tether"
    #: approximate MAXLEN on XADD; 0 keeps every entry (trimming can drop unread entries)
    maxlen: int = 0

    def __post_init__(self) -> None:
        if self.default_partitions < 1:
            raise BrokerConfigError("partitions must be at least 1")
        # a rebalance may pause heartbeats for session_timeout / 2 while it drains
        if self.heartbeat_interval <= 0 or 2 * self.heartbeat_interval >= self.session_timeout:
            raise BrokerConfigError(
                "heartbeat_interval must be positive and below half the session_timeout"
            )
        if self.block <= 0:
            raise BrokerConfigError("block must be positive")
        if not self.namespace:
            raise BrokerConfigError("namespace must not be empty")
        if self.maxlen < 0:
            raise BrokerConfigError("maxlen must not be negative")


_OPTIONS = {
    "partitions": ("default_partitions", int),
    "session_timeout": ("session_timeout", float),
    "heartbeat_interval": ("heartbeat_interval", float),
    "block": ("block", float),
    "namespace": ("namespace", str),
    "maxlen": ("maxlen", int),
}


def parse_url(url: str) -> tuple[str, RedisSettings, str]:
    """Split a broker URL into (redis-py URL, settings, URL safe to show)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise BrokerConfigError(f"not a redis:// or rediss:// URL: {url!r}")
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _OPTIONS:
            attribute, kind = _OPTIONS[name]
            try:
                ours[attribute] = kind(value)
            except ValueError:
                raise BrokerConfigError(f"bad {name}={value!r} in the broker URL") from None
        else:
            theirs.append((name, value))
    settings = RedisSettings(**ours)
    client_url = urlunsplit(parts._replace(query=urlencode(theirs)))
    shown = parts.netloc
    if parts.password is not None:
        shown = shown.replace(":" + parts.password + "@", ":***@", 1)
    return client_url, settings, urlunsplit(parts._replace(netloc=shown))


# --- key layout -------------------------------------------------------------------------------
def _escape(name: str) -> str:
    # ':' separates key parts, so a topic or group name must not contain a bare one
    return name.replace("%", "%25").replace(":", "%3A")


@dataclass(frozen=True, slots=True)
class Keys:
    namespace: str

    def partitions(self, topic: str) -> str:
        return f"{self.namespace}:{_escape(topic)}:partitions"

    def stream(self, topic: str, partition: int) -> str:
        return f"{self.namespace}:{_escape(topic)}:p{partition}"

    def members(self, topic: str, group: str) -> str:
        return f"{self.namespace}:{_escape(topic)}:g:{_escape(group)}:members"

    def lease(self, topic: str, group: str, partition: int) -> str:
        return f"{self.namespace}:{_escape(topic)}:g:{_escape(group)}:lease:{partition}"


# --- group protocol scripts (server clock, one round trip each) --------------------------------
# KEYS[1] members zset (score = expiry in ms); ARGV member, ttl ms -> live members
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

LEASE_RENEWED, LEASE_ACQUIRED, LEASE_HELD = 1, 2, 0

# KEYS lease keys; ARGV member, ttl ms -> per key: 1 renewed, 2 newly acquired, 0 held by another
CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 2
  else
    out[i] = 0
  end
end
return out
"""

# KEYS[1] members zset (or '' to stay registered), KEYS[2..] lease keys; ARGV member
RELEASE = """
if KEYS[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 0
"""


@dataclass(frozen=True, slots=True)
class _Scripts:
    heartbeat: AsyncScript
    claim: AsyncScript
    release: AsyncScript


# --- broker -----------------------------------------------------------------------------------
#: errors that mean Redis is unreachable, too slow, or refused a command
UNAVAILABLE = (RedisError, OSError)  # OSError covers the builtin TimeoutError of deadlines
#: events per XADD burst written and answered in one round trip
PUBLISH_CHUNK = 1000


class RedisBroker(Broker):
    def __init__(self, url: str) -> None:
        self._client_url, self.settings, self.url = parse_url(url)
        self.keys = Keys(self.settings.namespace)
        self._client: aioredis.Redis | None = None
        self._scripts: _Scripts | None = None
        self._partitions: dict[str, int] = {}
        self._xadd_heads: dict[str, list[tuple[bytes, int]]] = {}
        self._round_robin = itertools.count()
        self._subscriptions: list[RedisSubscription] = []

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise BrokerClosedError(f"broker {self.url} is not connected (closed or never opened)")
        return self._client

    @property
    def scripts(self) -> _Scripts:
        if self._scripts is None:
            raise BrokerClosedError(f"broker {self.url} is not connected (closed or never opened)")
        return self._scripts

    def deadline(self) -> asyncio.Timeout:
        """A bound on one Redis call: a dead server or a half-open socket must not hang a
        member longer than a session (the client has no socket timeout: per-reply timers
        cost more than the commands on the hot path)."""
        return asyncio.timeout(self.settings.session_timeout + self.settings.block)

    async def connect(self) -> None:
        if self._client is not None:
            return
        client = aioredis.Redis.from_url(
            self._client_url, socket_connect_timeout=min(5.0, self.settings.session_timeout)
        )
        try:
            async with self.deadline():
                await client.ping()
        except UNAVAILABLE as exc:
            await client.aclose()
            raise BrokerUnavailableError(f"cannot reach Redis at {self.url}: {exc}") from exc
        self._scripts = _Scripts(
            heartbeat=client.register_script(HEARTBEAT),
            claim=client.register_script(CLAIM),
            release=client.register_script(RELEASE),
        )
        self._client = client

    async def close(self, drain_timeout: float = 30.0) -> None:
        if self._client is None:
            return
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
        await self.publish_batch(topic, (event,))

    async def publish_batch(self, topic: str, events: Sequence[CloudEvent]) -> None:
        self.client  # noqa: B018 - raises BrokerClosedError when not connected
        if not events:
            return
        heads = self._xadd_heads.get(topic)
        if heads is None:
            heads = self._xadd_heads[topic] = self._xadd_heads_of(
                topic, await self.partition_count(topic)
            )
        count, round_robin = len(heads), self._round_robin
        try:
            for start in range(0, len(events), PUBLISH_CHUNK):
                chunk = events[start : start + PUBLISH_CHUNK]
                commands = []
                for event in chunk:
                    head, fixed = heads[partition_for(event.partitionkey, count, round_robin)]
                    commands.append(_pack_xadd(head, fixed, to_redis_fields(event)))
                await self.send_packed(b"".join(commands), len(chunk))
        except UNAVAILABLE as exc:
            raise BrokerUnavailableError(f"publish to {topic!r} on {self.url}: {exc}") from exc

    def _xadd_heads_of(self, topic: str, partitions: int) -> list[tuple[bytes, int]]:
        """Per partition: the packed ``XADD <stream> [MAXLEN ~ n] *`` and its arg count."""
        heads = []
        for partition in range(partitions):
            args = [b"XADD", self.keys.stream(topic, partition).encode()]
            if self.settings.maxlen:
                args += [b"MAXLEN", b"~", str(self.settings.maxlen).encode()]
            args.append(b"*")
            heads.append((b"".join(_bulk(arg) for arg in args), len(args)))
        return heads

    async def send_packed(self, payload: bytes, replies: int) -> None:
        """Write commands already in the Redis protocol on one connection and read their
        replies (an error reply raises). redis-py's pipeline runs every argument through its
        generic encoder, which costs more than an XADD or an XACK takes in Redis, so the
        hot commands are packed here (:func:`_pack_xadd`, :func:`pack_command`)."""
        pool = self.client.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            async with self.deadline():
                await connection.send_packed_command(payload)
                for _ in range(replies):
                    await connection.read_response()
        except BaseException:
            # replies may be left unread: the connection cannot be reused
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)

    def subscribe(
        self, topic: str, group: str, options: SubscribeOptions | None = None
    ) -> RedisSubscription:
        self.client  # noqa: B018 - raises BrokerClosedError when not connected
        subscription = RedisSubscription(self, topic, group, options)
        self._subscriptions = [s for s in self._subscriptions if not s.closed]
        self._subscriptions.append(subscription)
        return subscription


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


def pack_command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join([_bulk(arg) for arg in args])


def _pack_xadd(head: bytes, fixed: int, fields: RedisFields) -> bytes:
    """One XADD in the Redis protocol: ``head`` (see ``_xadd_heads_of``) plus the fields."""
    parts = [b"*%d\r\n" % (fixed + 2 * len(fields)), head]
    for name, value in fields.items():
        if isinstance(name, str):
            name = name.encode()
        if isinstance(value, str):
            value = value.encode()
        parts.append(b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(name), name, len(value), value))
    return b"".join(parts)


# --- subscription -----------------------------------------------------------------------------
@dataclass(slots=True, eq=False)
class _Owned:
    """A partition stream this member holds the lease of."""

    stream: str
    valid_until: float  # loop time when the lease lapses unless renewed
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    in_call: bool = False  # inside a Redis call that moves entries into our PEL
    #: where the takeover's XAUTOCLAIM scan goes on; None once every pending entry is back
    reclaim_from: bytes | str | None = "0-0"


class RedisSubscription(Subscription):
    def __init__(
        self, broker: RedisBroker, topic: str, group: str, options: SubscribeOptions | None
    ) -> None:
        super().__init__(topic, group, options)
        self._broker = broker
        self._keys = broker.keys
        self._settings = broker.settings
        self.member = new_member_id()
        self._owned: dict[int, _Owned] = {}
        self._partition_count = 0
        self._fetch_count = min(FETCH_BATCH, self.options.max_in_flight)
        self._coordinator: asyncio.Task[None] | None = None
        self._acker: asyncio.Task[None] | None = None
        self._acks: dict[int, list[bytes]] = {}
        self._ack_wanted = asyncio.Event()
        self._ack_lock = asyncio.Lock()
        self._coordination = asyncio.Lock()
        self._waiting_for_leases = False
        self._draining = False

    @property
    def assigned_partitions(self) -> list[int]:
        return sorted(self._owned)

    # --- Subscription hooks -------------------------------------------------------------------
    async def _start(self) -> None:
        self._partition_count = await self._broker.partition_count(self.topic)
        try:
            async with self._coordination:
                await self._rebalance()
        except UNAVAILABLE as exc:
            await asyncio.gather(*(self._stop(o, graceful=False) for o in self._owned.values()))
            self._owned.clear()
            raise BrokerUnavailableError(f"join {self.topic}/{self.group}: {exc}") from exc
        self._coordinator = asyncio.create_task(self._coordinate(), name=f"coord:{self.topic}")
        self._acker = asyncio.create_task(self._ack_loop(), name=f"ack:{self.topic}")

    async def _stop_fetching(self) -> None:
        # Wait for a rebalance in progress, then only renew our leases while the in-flight
        # deliveries drain (nobody may take those partitions yet). Leaving the membership now
        # lets the others plan without us.
        async with self._coordination:
            self._draining = True
        await asyncio.gather(*(self._stop(owned, graceful=True) for owned in self._owned.values()))
        with contextlib.suppress(*UNAVAILABLE):
            async with self._broker.deadline():
                await self._broker.scripts.release(
                    keys=[self._keys.members(self.topic, self.group)], args=[self.member]
                )

    async def _finish(self) -> None:
        await _cancel(self._coordinator)
        await _cancel(self._acker)
        try:
            await self._flush_acks()
            await self._release(list(self._owned), leave=True)
        except UNAVAILABLE as exc:  # the leases lapse on their own; the entries stay pending
            log.warning("%s/%s: leaving the group failed: %s", self.topic, self.group, exc)
        self._owned.clear()

    async def _on_settled(self, record: Record) -> None:
        # Acks are batched: one XACK per stream for whatever settled since the last one.
        pending = self._acks.get(record.partition)
        if pending is None:
            self._acks[record.partition] = [record.position]
        else:
            pending.append(record.position)
        self._ack_wanted.set()

    async def _publish_dead_letter(self, topic: str, event: CloudEvent) -> None:
        await self._broker.publish(topic, event)

    async def _redelivery_count(self, record: Record) -> int:
        """Write the next count into the group's pending entry (XCLAIM RETRYCOUNT), so a
        member that takes over after a crash sees how often the entry was delivered."""
        count = record.delivery_count + 1
        try:
            async with self._broker.deadline():
                await self._broker.client.xclaim(
                    self._keys.stream(self.topic, record.partition), self.group, self.member,
                    0, [record.position], retrycount=count, justid=True,
                )
        except UNAVAILABLE as exc:
            log.warning("%s/%s: cannot record delivery count: %s", self.topic, self.group, exc)
        return count

    # --- coordination -------------------------------------------------------------------------
    async def _coordinate(self) -> None:
        settings = self._settings
        while True:
            fast = self._waiting_for_leases and not self._draining
            await asyncio.sleep(CLAIM_RETRY if fast else settings.heartbeat_interval)
            try:
                async with self._coordination:
                    if self._draining:
                        await self._renew()
                    else:
                        await self._rebalance()
            except asyncio.CancelledError:
                raise
            except UNAVAILABLE as exc:  # the leases tell whether we still own anything
                log.warning("%s/%s: heartbeat failed: %s", self.topic, self.group, exc)
            except Exception:  # nothing may kill the member; retry next tick
                log.exception("%s/%s: coordination failed; retrying", self.topic, self.group)

    async def _rebalance(self) -> None:
        """Heartbeat, then move to the assignment the live members imply: partition p
        belongs to members[p % n] of the sorted live members."""
        ttl_ms = int(self._settings.session_timeout * 1000)
        async with self._broker.deadline():
            raw = await self._broker.scripts.heartbeat(
                keys=[self._keys.members(self.topic, self.group)], args=[self.member, ttl_ms]
            )
        members = sorted({m.decode() for m in raw} | {self.member})
        index, count = members.index(self.member), len(members)
        mine = [p for p in range(self._partition_count) if p % count == index]
        leaving = sorted(set(self._owned) - set(mine))
        if leaving:
            await self._hand_over(leaving)
        started, codes = await self._claim(mine)
        self._waiting_for_leases = LEASE_HELD in codes
        for partition, code in zip(mine, codes, strict=True):
            if partition in self._owned and code != LEASE_RENEWED:
                # another member holds it, or it lapsed and may have moved in between:
                # what we hold of it is stale
                await self._lost(partition)
            if partition not in self._owned and code != LEASE_HELD:
                self._take(partition, started + self._settings.session_timeout)

    async def _renew(self) -> None:
        partitions = list(self._owned)
        _, codes = await self._claim(partitions)
        for partition, code in zip(partitions, codes, strict=True):
            if code != LEASE_RENEWED:
                await self._lost(partition)

    async def _claim(self, partitions: list[int]) -> tuple[float, list[int]]:
        """Take or renew leases (one code per partition); extends the ones we own."""
        started = asyncio.get_running_loop().time()
        if not partitions:
            return started, []
        ttl = self._settings.session_timeout
        async with self._broker.deadline():
            raw = await self._broker.scripts.claim(
                keys=[self._keys.lease(self.topic, self.group, p) for p in partitions],
                args=[self.member, int(ttl * 1000)],
            )
        codes = [int(code) for code in raw]
        for partition, code in zip(partitions, codes, strict=True):
            owned = self._owned.get(partition)
            if owned is not None and code == LEASE_RENEWED:
                owned.valid_until = started + ttl
        return started, codes

    def _take(self, partition: int, valid_until: float) -> None:
        owned = _Owned(self._keys.stream(self.topic, partition), valid_until)
        self._owned[partition] = owned
        owned.task = asyncio.create_task(
            self._consume(partition, owned), name=f"fetch:{self.topic}[{partition}]"
        )
        log.debug("%s/%s: %s took partition %d", self.topic, self.group, self.member, partition)

    async def _hand_over(self, partitions: list[int]) -> None:
        """Rebalance: stop reading, drain what was handed out, ack it, release the leases.
        The next owner reclaims whatever is still pending."""
        await asyncio.gather(*(self._stop(self._owned[p], graceful=True) for p in partitions))
        await self._revoke(partitions, self._settings.session_timeout / 2)
        await self._flush_acks()
        for partition in partitions:
            del self._owned[partition]
        await self._release(partitions, leave=False)

    async def _lost(self, partition: int) -> None:
        """Our lease is gone (we were presumed dead): stop at once and forget the partition."""
        log.warning("%s/%s: lease on partition %d lost", self.topic, self.group, partition)
        owned = self._owned.pop(partition)
        await self._stop(owned, graceful=False)
        await self._revoke([partition], 0)

    async def _release(self, partitions: list[int], *, leave: bool) -> None:
        members = self._keys.members(self.topic, self.group) if leave else ""
        leases = [self._keys.lease(self.topic, self.group, p) for p in partitions]
        async with self._broker.deadline():
            await self._broker.scripts.release(keys=[members, *leases], args=[self.member])

    async def _stop(self, owned: _Owned, *, graceful: bool) -> None:
        """Stop a partition's fetcher. Gracefully, a Redis call in progress is let finish
        (within ``block`` seconds), so no entry lands in our PEL after we release the lease."""
        owned.stopping = True
        task = owned.task
        if task is None or task.done():
            return
        if graceful and owned.in_call:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
            if task.done():
                return
        await _cancel(task)

    # --- fetching -----------------------------------------------------------------------------
    async def _consume(self, partition: int, owned: _Owned) -> None:
        """Reclaim what the group left pending on this stream, then read new entries."""
        while not owned.stopping:
            try:
                if owned.reclaim_from is not None:
                    await self._ensure_group(owned)
                    await self._reclaim(partition, owned)
                    await self._forget_idle_consumers(owned)
                await self._read(partition, owned)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream was deleted under us: start over
                    owned.reclaim_from = "0-0"
                log.warning("%s/%s[%d]: %s", self.topic, self.group, partition, exc)
                await asyncio.sleep(RETRY_DELAY)
            except UNAVAILABLE as exc:
                log.warning("%s/%s[%d]: %s; retrying", self.topic, self.group, partition, exc)
                await asyncio.sleep(RETRY_DELAY)

    async def _ensure_group(self, owned: _Owned) -> None:
        try:
            async with self._broker.deadline():
                await self._broker.client.xgroup_create(
                    owned.stream, self.group, id="0", mkstream=True
                )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _reclaim(self, partition: int, owned: _Owned) -> None:
        """Claim every pending entry of the group on this stream (a lease guarantees the
        previous owner is gone or has handed over) and deliver them in stream order."""
        client = self._broker.client
        while owned.reclaim_from is not None and not owned.stopping:
            start = owned.reclaim_from
            owned.in_call = True
            try:
                async with self._broker.deadline():
                    cursor, entries, *_ = await client.xautoclaim(
                        owned.stream, self.group, self.member, 0, start, count=self._fetch_count
                    )
                    counts: dict[bytes, int] = {}
                    if entries:
                        pending: list[dict[str, Any]] = await client.xpending_range(
                            owned.stream, self.group, entries[0][0], entries[-1][0],
                            len(entries), consumername=self.member,
                        )
                        counts = {p["message_id"]: p["times_delivered"] for p in pending}
            finally:
                owned.in_call = False
            if owned.stopping:
                return  # what was just claimed stays pending for the next owner
            if entries:
                log.info("%s/%s[%d]: reclaimed %d pending entries", self.topic, self.group,
                         partition, len(entries))
            for entry_id, fields in entries:
                if fields is None:  # trimmed away while pending
                    continue
                record = self._record(partition, entry_id, fields, counts.get(entry_id, 2))
                await self._deliver(record, reclaimed=True)
            # a failure above retries from here: what was handed out is not claimed again
            owned.reclaim_from = None if cursor in (b"0-0", "0-0") else cursor

    async def _forget_idle_consumers(self, owned: _Owned) -> None:
        """Delete the group's consumers that hold nothing (old owners), keeping it tidy."""
        client = self._broker.client
        async with self._broker.deadline():
            for consumer in await client.xinfo_consumers(owned.stream, self.group):
                name = consumer["name"]
                if consumer["pending"] == 0 and name != self.member.encode():
                    await client.xgroup_delconsumer(owned.stream, self.group, name)

    async def _read(self, partition: int, owned: _Owned) -> None:
        client, loop = self._broker.client, asyncio.get_running_loop()
        block_ms = int(self._settings.block * 1000)
        streams: Any = {owned.stream: ">"}
        while not owned.stopping:
            if loop.time() >= owned.valid_until:  # the lease may have lapsed: read nothing
                await asyncio.sleep(min(self._settings.block, CLAIM_RETRY))
                continue
            owned.in_call = True
            try:
                async with self._broker.deadline():
                    reply: Any = await client.xreadgroup(
                        self.group, self.member, streams, count=self._fetch_count, block=block_ms
                    )
            finally:
                owned.in_call = False
            if owned.stopping:
                return  # what was just read stays pending for the next owner
            for _, entries in reply:
                for entry_id, fields in entries:
                    await self._deliver(self._record(partition, entry_id, fields, 1))

    async def _deliver(self, record: Record, *, reclaimed: bool = False) -> None:
        """Hand a record to the engine; dead-lettering may need Redis, so retry until it
        works (a stop cancels us and the entry stays pending for the next owner)."""
        worn_out = reclaimed and record.delivery_count > self.options.max_deliveries
        if worn_out and record.event is not None:
            # delivered max_deliveries times and never settled: its handler keeps dying
            record.delivery_count -= 1
        while True:
            try:
                if worn_out and record.event is not None:
                    reason = f"delivered {record.delivery_count} times (max_deliveries)"
                    await self._dead_letter(record, reason)
                else:
                    await self._put(record)
                return
            except BrokerUnavailableError as exc:
                log.warning("%s/%s: dead-lettering failed: %s; retrying", self.topic,
                            self.group, exc)
                await asyncio.sleep(RETRY_DELAY)

    def _record(
        self, partition: int, entry_id: bytes, fields: dict[bytes, bytes], count: int
    ) -> Record:
        try:
            event = from_redis_fields(fields)
        except Exception as exc:  # whatever cannot become an event is dead-lettered
            raw = repr(sorted(fields.items())).encode()
            return Record(partition, entry_id, None, None, count, raw=raw, error=str(exc))
        return Record(partition, entry_id, event.partitionkey, event, count)

    # --- acknowledging ------------------------------------------------------------------------
    async def _ack_loop(self) -> None:
        while True:
            await self._ack_wanted.wait()
            self._ack_wanted.clear()
            try:
                await self._flush_acks()
            except UNAVAILABLE as exc:
                log.warning("%s/%s: XACK failed: %s; retrying", self.topic, self.group, exc)
                await asyncio.sleep(RETRY_DELAY)
                self._ack_wanted.set()

    async def _flush_acks(self) -> None:
        """XACK everything settled so far, one command per stream, in one round trip."""
        async with self._ack_lock:
            acks, self._acks = self._acks, {}
            if not acks:
                return
            group, keys = self.group.encode(), self._keys
            payload = b"".join(
                pack_command(b"XACK", keys.stream(self.topic, partition).encode(), group, *ids)
                for partition, ids in acks.items()
            )
            try:
                await self._broker.send_packed(payload, len(acks))
            except BaseException:
                for partition, ids in acks.items():  # keep them for the next try
                    self._acks.setdefault(partition, []).extend(ids)
                raise


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def from_url(url: str) -> RedisBroker:
    """``redis://[:password@]host:port/db?options`` or ``rediss://...`` (see module doc)."""
    return RedisBroker(url)
