"""``kafka://``: Apache Kafka (or a Kafka-compatible broker) through aiokafka.

URL: ``kafka://[user:password@]host:port[,host:port...][?option=value&...]``. A host without a
port gets 9092. Options (times in milliseconds):

=========================  ========  =========================================================
option                     default   meaning
=========================  ========  =========================================================
``partitions``             4         partitions of a topic Tether creates on first use
``replication_factor``     1         replicas of a topic Tether creates
``session_timeout_ms``     10000     a member silent this long is presumed dead
``heartbeat_interval_ms``  3000      group heartbeat period (below session_timeout_ms)
``rebalance_timeout_ms``   session   how long the coordinator waits for members to rejoin;
                                     half of it is spent draining revoked partitions
``commit_interval_ms``     50        how often settled offsets are committed
``linger_ms``              5         producer wait to fill a batch
``max_batch_size``         1048576   producer batch size in bytes (per partition)
``max_request_size``       1048576   largest produce request
``compression_type``       none      ``gzip``, ``snappy``, ``lz4`` or ``zstd``
``fetch_max_wait_ms``      100       how long a fetch waits for data on the broker
``fetch_max_bytes``        52428800  bytes per fetch response
``max_partition_fetch_bytes``  1048576  bytes per partition in one fetch response
``max_poll_records``       2000      records taken from the fetcher per loop turn
``request_timeout_ms``     40000     one request to the broker
``connect_timeout_ms``     10000     connect() gives up after this (BrokerUnavailableError)
``client_id``              tether    client id shown in broker logs
``security_protocol``      PLAINTEXT ``SSL``, ``SASL_PLAINTEXT`` or ``SASL_SSL``
``sasl_mechanism``         PLAIN     with SASL: ``PLAIN``, ``SCRAM-SHA-256``, ``SCRAM-SHA-512``
=========================  ========  =========================================================

User and password in the URL are the SASL credentials; ``url`` on the broker omits the password.

Events travel in the CloudEvents Kafka binding (binary mode): the record key is the event's
``partitionkey``, so one key always lands on one partition (Kafka's murmur2 partitioner) and
keeps its order. A subscription is one consumer in the Kafka consumer group ``group`` with
auto-commit off: offsets are committed only up to the first unsettled delivery of a
partition (periodically, on revoke and on close), which gives at-least-once delivery.
The producer is not idempotent (acks=all, retries may duplicate): consumers must tolerate
duplicates either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ConsumerStoppedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAlreadyExistsError,
    for_code,
)
from aiokafka.helpers import create_ssl_context
from aiokafka.protocol.group import LeaveGroupRequest

from tether.brokers.base import (
    DEFAULT_PARTITIONS,
    Broker,
    BrokerClosedError,
    BrokerConfigError,
    BrokerError,
    BrokerUnavailableError,
    SubscribeOptions,
)
from tether.brokers.offsets import OffsetTracker
from tether.brokers.subscription import Record, Subscription
from tether.platform.events import CloudEvent, InvalidCloudEventError
from tether.platform.events.kafka import from_kafka, to_kafka

log = logging.getLogger(__name__)

DEFAULT_PORT = 9092
_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_COMPRESSION = ("none", "gzip", "snappy", "lz4", "zstd")
_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Everything a ``kafka://`` URL can say (see the module docstring)."""

    bootstrap_servers: tuple[str, ...]
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = 1
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    rebalance_timeout_ms: int | None = None
    commit_interval_ms: int = 50
    linger_ms: int = 5
    max_batch_size: int = 1_048_576
    max_request_size: int = 1_048_576
    compression_type: str = "none"
    fetch_max_wait_ms: int = 100
    fetch_max_bytes: int = 52_428_800
    max_partition_fetch_bytes: int = 1_048_576
    max_poll_records: int = 2_000
    request_timeout_ms: int = 40_000
    connect_timeout_ms: int = 10_000
    client_id: str = "tether"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise BrokerConfigError("kafka:// needs at least one host:port")
        for name in ("partitions", "replication_factor", "session_timeout_ms",
                     "heartbeat_interval_ms", "commit_interval_ms", "max_batch_size",
                     "max_poll_records", "request_timeout_ms", "connect_timeout_ms"):
            if getattr(self, name) < 1:
                raise BrokerConfigError(f"kafka:// option {name} must be at least 1")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise BrokerConfigError("heartbeat_interval_ms must be below session_timeout_ms")
        if self.security_protocol not in _SECURITY_PROTOCOLS:
            raise BrokerConfigError(f"security_protocol must be one of {_SECURITY_PROTOCOLS}")
        if self.sasl_mechanism not in _SASL_MECHANISMS:
            raise BrokerConfigError(f"sasl_mechanism must be one of {_SASL_MECHANISMS}")
        if self.compression_type not in _COMPRESSION:
            raise BrokerConfigError(f"compression_type must be one of {_COMPRESSION}")

    @property
    def rebalance_timeout(self) -> int:
        return self.rebalance_timeout_ms or self.session_timeout_ms

    def client_options(self) -> dict[str, Any]:
        """Connection options shared by the producer, the consumers and the admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
        }
        if "SSL" in self.security_protocol:
            options["ssl_context"] = create_ssl_context()
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password
        return options

    def public_url(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"kafka://{user}{','.join(self.bootstrap_servers)}"


def parse_url(url: str) -> KafkaSettings:
    """``kafka://host:port[,host:port]?option=value`` -> settings; bad input is a
    BrokerConfigError naming the offending part."""
    parts = urlsplit(url)
    if parts.scheme != "kafka":
        raise BrokerConfigError(f"not a kafka:// URL: {url!r}")
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user), (unquote(secret) if secret else None)
    servers = []
    for host in filter(None, (h.strip() for h in netloc.split(","))):
        servers.append(host if ":" in host.rsplit("]", 1)[-1] else f"{host}:{DEFAULT_PORT}")
    known = {f.name: f for f in fields(KafkaSettings)}
    options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in known or name in ("bootstrap_servers", "username", "password"):
            raise BrokerConfigError(f"unknown kafka:// option {name!r} in {url!r}")
        if name in ("client_id", "compression_type", "security_protocol", "sasl_mechanism"):
            options[name] = value
            continue
        try:
            options[name] = int(value)
        except ValueError:
            raise BrokerConfigError(
                f"kafka:// option {name} must be an integer, got {value!r}"
            ) from None
    return KafkaSettings(
        bootstrap_servers=tuple(servers), username=username, password=password, **options
    )


def from_url(url: str) -> KafkaBroker:
    return KafkaBroker(parse_url(url))


def _unavailable(what: str, exc: BaseException) -> BrokerUnavailableError:
    return BrokerUnavailableError(f"{what}: {type(exc).__name__}: {exc}")


class KafkaBroker(Broker):
    """One producer (shared by every publish) plus one consumer per subscription."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.url = settings.public_url()
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._admin_lock = asyncio.Lock()
        # topic -> creation in progress or done, so concurrent publishers create it once
        self._topics: dict[str, asyncio.Future[None]] = {}
        self._subscriptions: set[KafkaSubscription] = set()
        self._closing = False

    # --- lifecycle ----------------------------------------------------------------------------
    async def connect(self) -> None:
        if self._producer is not None:
            return
        settings = self.settings
        producer = AIOKafkaProducer(
            **settings.client_options(),
            acks="all",
            enable_idempotence=False,  # tansu and some managed brokers refuse InitProducerId
            linger_ms=settings.linger_ms,
            max_batch_size=settings.max_batch_size,
            max_request_size=settings.max_request_size,
            compression_type=None if settings.compression_type == "none"
            else settings.compression_type,
        )
        try:
            await asyncio.wait_for(producer.start(), settings.connect_timeout_ms / 1000)
        except (KafkaError, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise _unavailable(
                f"cannot reach Kafka at {','.join(settings.bootstrap_servers)}", exc
            ) from exc
        self._producer = producer

    async def close(self, drain_timeout: float = 30.0) -> None:
        producer = self._producer
        if producer is None or self._closing:
            return
        self._closing = True  # publish() refuses from here; dead letters still go out
        subscriptions, self._subscriptions = list(self._subscriptions), set()
        try:
            await asyncio.gather(*(s.close(drain_timeout) for s in subscriptions))
        finally:
            self._producer = None
            self._closing = False
            admin, self._admin = self._admin, None
            self._topics.clear()
            with contextlib.suppress(KafkaError):
                await producer.stop()
            if admin is not None:
                with contextlib.suppress(KafkaError):
                    await admin.close()

    # --- topics -------------------------------------------------------------------------------
    async def create_topic(self, topic: str, partitions: int = DEFAULT_PARTITIONS) -> None:
        self._require_producer()
        if partitions < 1:
            raise BrokerConfigError("partitions must be at least 1")
        await self._create(topic, partitions)
        self._topics[topic] = _done_future()

    async def ensure_topic(self, topic: str) -> None:
        """Create ``topic`` with the default partition count unless this broker already did
        (or saw it exists), so a key's partition is fixed from the first event on."""
        known = self._topics.get(topic)
        if known is None:
            known = self._topics[topic] = asyncio.get_running_loop().create_future()
            try:
                await self._create(topic, self.settings.partitions)
            except BaseException as exc:
                del self._topics[topic]
                known.set_exception(exc)
                known.exception()  # retrieved here: the caller gets it raised below
                raise
            known.set_result(None)
        elif not known.done():
            await asyncio.shield(known)

    async def _create(self, topic: str, partitions: int) -> None:
        admin = await self._admin_client()
        new = NewTopic(topic, partitions, self.settings.replication_factor)
        try:
            response = await admin.create_topics([new])
        except KafkaError as exc:
            raise _unavailable(f"creating topic {topic!r} failed", exc) from exc
        for name, code, message in _topic_errors(response):
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                error = for_code(code)
                raise BrokerError(f"creating topic {name!r} failed: {error.__name__}: {message}")

    async def _admin_client(self) -> AIOKafkaAdminClient:
        async with self._admin_lock:
            if self._admin is None:
                admin = AIOKafkaAdminClient(**self.settings.client_options())
                try:
                    await asyncio.wait_for(admin.start(), self.settings.connect_timeout_ms / 1000)
                except (KafkaError, OSError, TimeoutError) as exc:
                    with contextlib.suppress(Exception):
                        await admin.close()
                    raise _unavailable("cannot start the Kafka admin client", exc) from exc
                self._admin = admin
            return self._admin

    # --- publishing ---------------------------------------------------------------------------
    async def publish(self, topic: str, event: CloudEvent) -> None:
        await self._send_one(self._require_producer(), topic, event)

    async def publish_batch(self, topic: str, events: Sequence[CloudEvent]) -> None:
        producer = self._require_producer()
        if not events:
            return
        if topic not in self._topics or not self._topics[topic].done():
            await self.ensure_topic(topic)
        # queue everything, then wait once: the producer batches by partition and linger_ms
        pending: list[asyncio.Future[Any]] = []
        try:
            for event in events:
                pending.append(await _enqueue(producer, topic, event))
            await asyncio.gather(*pending)
        except KafkaError as exc:
            for future in pending:  # the first failure is raised; do not leak the others
                if not future.done():
                    future.add_done_callback(_consume_exception)
            raise _publish_error(topic, exc) from exc

    async def _publish_dead_letter(self, topic: str, event: CloudEvent) -> None:
        """Dead letters still go out while close() drains the subscriptions."""
        if self._producer is None:
            raise BrokerClosedError(f"broker {self.url} is closed: cannot dead-letter to {topic}")
        await self._send_one(self._producer, topic, event)

    async def _send_one(self, producer: AIOKafkaProducer, topic: str, event: CloudEvent) -> None:
        if topic not in self._topics or not self._topics[topic].done():
            await self.ensure_topic(topic)
        try:
            await (await _enqueue(producer, topic, event))
        except KafkaError as exc:
            raise _publish_error(topic, exc) from exc

    # --- subscribing --------------------------------------------------------------------------
    def subscribe(
        self, topic: str, group: str, options: SubscribeOptions | None = None
    ) -> KafkaSubscription:
        self._require_producer()
        subscription = KafkaSubscription(self, topic, group, options)
        self._subscriptions.add(subscription)
        return subscription

    async def _leave_group(self, group: str, member_id: str) -> None:
        """Best effort LeaveGroup for a member aiokafka did not let go (see _stop_consumer)."""
        try:
            admin = await self._admin_client()
            node = await admin.find_coordinator(group)
            await admin._send_request_to_node(node, LeaveGroupRequest(group, member_id))
        except (KafkaError, BrokerError) as exc:
            log.debug("LeaveGroup for %s in %s failed: %s", member_id, group, exc)

    def _forget(self, subscription: KafkaSubscription) -> None:
        self._subscriptions.discard(subscription)

    def _require_producer(self) -> AIOKafkaProducer:
        if self._producer is None or self._closing:
            raise BrokerClosedError(f"broker {self.url} is not connected (closed or never opened)")
        return self._producer


async def _enqueue(producer: AIOKafkaProducer, topic: str, event: CloudEvent) -> Any:
    """Hand one event to the producer; returns the future of its acknowledgement."""
    key, value, headers = to_kafka(event)
    if key is None and value is None:
        # send() refuses a record with neither key nor value, which is what an event without
        # data and partition key is: it goes as a one-record batch to a random partition
        batch = producer.create_batch()
        batch.append(key=None, value=None, timestamp=None, headers=headers)
        partitions = sorted(await producer.partitions_for(topic))
        return await producer.send_batch(batch, topic, partition=random.choice(partitions))
    return await producer.send(topic, value, key=key, headers=headers)


def _done_future() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    """(topic, error code, message) from any CreateTopics response version."""
    return [(item[0], item[1], item[2] if len(item) > 2 else None)
            for item in response.topic_errors]


def _publish_error(topic: str, exc: KafkaError) -> BrokerError:
    if isinstance(exc, (KafkaConnectionError, KafkaTimeoutError)) or exc.retriable:
        return _unavailable(f"publishing to {topic!r} failed", exc)
    return BrokerError(f"publishing to {topic!r} failed: {type(exc).__name__}: {exc}")


# --- consuming --------------------------------------------------------------------------------
@dataclass(slots=True)
class _Assigned:
    """One partition this member owns in the current generation."""

    tracker: OffsetTracker
    committed: int


@dataclass(slots=True, eq=False)
class _KafkaRecord(Record):
    #: the assignment the record was fetched under: a late ack after a rebalance must not
    #: settle an offset in a newer assignment of the same partition
    owner: _Assigned | None = None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._subscription._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._subscription._on_assigned(assigned)


class KafkaSubscription(Subscription):
    """One member of a Kafka consumer group; see the module docstring for commits."""

    def __init__(
        self, broker: KafkaBroker, topic: str, group: str, options: SubscribeOptions | None
    ) -> None:
        super().__init__(topic, group, options)
        self._broker = broker
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: dict[int, _Assigned] = {}
        self._fetch_task: asyncio.Task[None] | None = None
        self._commit_task: asyncio.Task[None] | None = None
        self._commit_lock = asyncio.Lock()
        self._dirty = False  # something settled since the last commit
        self._fetching = False  # False once close() began: a rebalance must not restart it

    @property
    def assigned_partitions(self) -> list[int]:
        return sorted(self._assigned)

    # --- Subscription hooks -------------------------------------------------------------------
    async def _start(self) -> None:
        broker, settings = self._broker, self._broker.settings
        await broker.ensure_topic(self.topic)
        consumer = AIOKafkaConsumer(
            **settings.client_options(),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            rebalance_timeout_ms=settings.rebalance_timeout,
            # deliveries are decoupled from fetching: a full max_in_flight window (long
            # handlers, long nack delays) is not a stuck consumer, so do not leave the group
            max_poll_interval_ms=2**31 - 1,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            fetch_max_bytes=settings.fetch_max_bytes,
            max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
            max_poll_records=settings.max_poll_records,
        )
        try:
            await asyncio.wait_for(consumer.start(), settings.connect_timeout_ms / 1000)
        except (KafkaError, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise _unavailable(f"cannot start a consumer for {self.topic!r}", exc) from exc
        self._consumer = consumer
        self._fetching = True
        # subscribing after start() lets the group join run in the background: a join can
        # take a whole session timeout (a dead member), which is not a connection failure
        consumer.subscribe([self.topic], listener=_Listener(self))
        self._commit_task = asyncio.create_task(self._commit_loop(), name=f"commit:{self.topic}")

    async def _stop_fetching(self) -> None:
        self._fetching = False
        await _cancel(self._fetch_task)
        self._fetch_task = None

    async def _finish(self) -> None:
        await _cancel(self._commit_task)
        self._commit_task = None
        try:
            await self._commit(set(self._assigned))
        finally:
            consumer, self._consumer = self._consumer, None
            self._assigned.clear()
            self._broker._forget(self)
            if consumer is not None:
                await self._stop_consumer(consumer)

    async def _stop_consumer(self, consumer: AIOKafkaConsumer) -> None:
        # aiokafka sends LeaveGroup only for generation > 0, but tansu numbers generations
        # from 0: without this a graceful stop looks like a crash to the group, which then
        # waits a whole session timeout before it rebalances (Kafka itself starts at 1)
        coordinator = getattr(consumer, "_coordinator", None)
        member_id = getattr(coordinator, "member_id", "")
        generation = getattr(coordinator, "generation", -1)
        with contextlib.suppress(KafkaError):
            await consumer.stop()
        if generation == 0 and member_id:
            await self._broker._leave_group(self.group, member_id)

    async def _on_settled(self, record: Record) -> None:
        assert isinstance(record, _KafkaRecord)
        owner = record.owner
        if owner is not None and self._assigned.get(record.partition) is owner:
            owner.tracker.settle(record.position)
            self._dirty = True

    async def _publish_dead_letter(self, topic: str, event: CloudEvent) -> None:
        await self._broker._publish_dead_letter(topic, event)

    # --- rebalance (called from aiokafka's coordinator task) ----------------------------------
    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # the fetch loop may hold records of these partitions (or wait in _put with one):
        # stop it so nothing is handed out after the commit below
        await _cancel(self._fetch_task)
        self._fetch_task = None
        partitions = {tp.partition for tp in revoked if tp.topic == self.topic}
        if not partitions:
            return
        await self._revoke(partitions, self._broker.settings.rebalance_timeout / 2000)
        try:
            await self._commit(partitions)
        finally:
            for partition in partitions:
                self._assigned.pop(partition, None)

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        for tp in assigned:
            if tp.topic != self.topic:
                continue
            try:
                position = await consumer.position(tp) if consumer is not None else None
            except KafkaError as exc:  # the first fetched record will set the start instead
                log.debug("%s/%s: no position for %s: %s", self.topic, self.group, tp, exc)
                position = None
            if position is None:
                self._assigned.pop(tp.partition, None)
                continue
            self._assigned[tp.partition] = _Assigned(OffsetTracker(position), position)
        log.info("%s/%s: assigned partitions %s", self.topic, self.group, self.assigned_partitions)
        if self._fetching and self._fetch_task is None:
            self._fetch_task = asyncio.create_task(self._fetch_loop(), name=f"fetch:{self.topic}")

    # --- fetching -----------------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        max_records = self._broker.settings.max_poll_records
        topic, assigned, put = self.topic, self._assigned, self._put
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            except ConsumerStoppedError:
                return
            except KafkaError as exc:
                log.warning("%s/%s: fetch failed, retrying: %s", topic, self.group, exc)
                await asyncio.sleep(1.0)
                continue
            for tp, messages in batches.items():
                partition = tp.partition
                owner = assigned.get(partition)
                if owner is None:  # assigned without a known position: start at the first record
                    owner = assigned[partition] = _Assigned(
                        OffsetTracker(messages[0].offset), messages[0].offset
                    )
                register = owner.tracker.register
                for message in messages:
                    register(message.offset)
                    await put(_to_record(partition, message, owner))

    # --- committing ---------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        interval = self._broker.settings.commit_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            if self._dirty:
                self._dirty = False
                await self._commit(set(self._assigned))

    async def _commit(self, partitions: set[int]) -> None:
        """Commit the settled prefix of ``partitions`` that are still assigned; a failure
        (typically a rebalance in between) is logged: the records are redelivered instead."""
        consumer = self._consumer
        if consumer is None:
            return
        async with self._commit_lock:
            offsets: dict[TopicPartition, int] = {}
            owners: list[tuple[_Assigned, int]] = []
            for partition in partitions:
                owner = self._assigned.get(partition)
                if owner is not None and owner.tracker.commit_point != owner.committed:
                    point = owner.tracker.commit_point
                    offsets[TopicPartition(self.topic, partition)] = point
                    owners.append((owner, point))
            if not offsets:
                return
            try:
                await consumer.commit(offsets)
            except KafkaError as exc:
                log.warning("%s/%s: commit of %s failed (the group rebalanced?): %s",
                            self.topic, self.group, offsets, exc)
                self._dirty = True
                return
            log.debug("%s/%s: committed %s", self.topic, self.group, offsets)
            for owner, point in owners:
                owner.committed = point


def _to_record(partition: int, message: Any, owner: _Assigned) -> _KafkaRecord:
    raw_key = message.key
    key = raw_key.decode("utf-8", "replace") if raw_key is not None else None
    try:
        event = from_kafka(message.value, message.headers)
    except InvalidCloudEventError as exc:
        return _KafkaRecord(partition, message.offset, key, None, raw=message.value,
                            error=str(exc), owner=owner)
    return _KafkaRecord(partition, message.offset, key, event, owner=owner)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is None or task.done():
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


__all__ = ["KafkaBroker", "KafkaSettings", "KafkaSubscription", "from_url", "parse_url"]
