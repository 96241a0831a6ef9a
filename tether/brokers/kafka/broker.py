"""The Kafka broker: one producer for every publish, topic creation, and the subscriptions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    for_code,
)
from aiokafka.partitioner import murmur2
from aiokafka.protocol.group import LeaveGroupRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from tether.brokers.base import (
    DEFAULT_PARTITIONS,
    Broker,
    BrokerClosedError,
    BrokerConfigError,
    BrokerError,
    SubscribeOptions,
)
from tether.brokers.kafka.codec import to_kafka
from tether.brokers.kafka.errors import is_unavailable, publish_error, unavailable
from tether.brokers.kafka.logs import quiet_aiokafka_repeats
from tether.brokers.kafka.settings import KafkaSettings
from tether.brokers.kafka.subscription import KafkaSubscription
from tether.platform import env
from tether.platform.aio import Grouped, singly
from tether.platform.events import CloudEvent

log = logging.getLogger(__name__)

_TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


class KafkaBroker(Broker):
    """One producer (shared by every publish) plus one consumer per subscription."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.url = settings.public_url()
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._admin_lock = asyncio.Lock()
        # topic -> creation in progress or done, so concurrent publishers create it once;
        # forgotten when the broker may have lost it (a failed publish, a forgotten member)
        self._topics: dict[str, asyncio.Future[None]] = {}
        self._subscriptions: set[KafkaSubscription] = set()
        self._closing = False
        self._partitioner = _Partitioner()
        # group commit: concurrent single publishes go out packed as publish_batch packs
        self._publishes: Grouped[tuple[str, CloudEvent], None] = Grouped(
            self._publish_group, grouping=env.group_commit()
        )

    # --- lifecycle ----------------------------------------------------------------------------
    async def connect(self) -> None:
        if self._producer is not None:
            return
        quiet_aiokafka_repeats()
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
            raise unavailable(
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
            await self._publishes.drain()
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
        if self._producer is None:
            raise BrokerClosedError(f"broker {self.url} is not connected (closed or never opened)")
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

    def _topics_lost(self, topic: str | None = None) -> None:
        """The broker may have lost ``topic`` (default: every topic): a broker that keeps
        nothing restarted (tansu's memory engine), or someone deleted it. The next publish
        to it or subscription rejoin creates it again (CreateTopics: a no-op if it exists):
        a record produced to a topic the broker has not re-created yet is lost by tansu,
        and a broker that creates topics on a metadata request would pick its own count."""
        for name in [topic] if topic is not None else list(self._topics):
            known = self._topics.get(name)
            if known is not None and known.done():
                del self._topics[name]

    async def _create(self, topic: str, partitions: int) -> None:
        admin = await self._admin_client()
        new = NewTopic(topic, partitions, self.settings.replication_factor)
        try:
            response = await admin.create_topics([new])
        except KafkaError as exc:
            raise unavailable(f"creating topic {topic!r} failed", exc) from exc
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
                    raise unavailable("cannot start the Kafka admin client", exc) from exc
                self._admin = admin
            return self._admin

    # --- publishing ---------------------------------------------------------------------------
    async def publish(self, topic: str, event: CloudEvent) -> None:
        self._require_producer()
        await self._publishes.submit((topic, event))

    async def publish_batch(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Events are packed into one record batch per partition by hand (aiokafka's batch
        API): about three times the rate of one ``send()`` per event, which pays a coroutine,
        a metadata check and a partitioner call each."""
        producer = self._require_producer()
        for result in await self._send_packed(producer, [(topic, event) for event in events]):
            if result is not None:
                raise result

    async def _publish_dead_letter(self, topic: str, event: CloudEvent) -> None:
        """Dead letters still go out while close() drains the subscriptions."""
        if self._producer is None:
            raise BrokerClosedError(f"broker {self.url} is closed: cannot dead-letter to {topic}")
        await self._publishes.submit((topic, event))

    async def _publish_group(
        self, requests: Sequence[tuple[str, CloudEvent]]
    ) -> list[BaseException | None]:
        producer = self._producer
        if producer is None:
            raise BrokerClosedError(f"broker {self.url} is not connected (closed or never opened)")
        if len(requests) == 1:  # alone: aiokafka's own send() adds it to the open batch
            await self._send_one(producer, *requests[0])
            return [None]
        return await self._send_packed(producer, requests)

    async def _send_packed(
        self, producer: AIOKafkaProducer, requests: Sequence[tuple[str, CloudEvent]]
    ) -> list[BaseException | None]:
        """Send events (any topics) as one record batch per partition; each gets its own
        error: a topic that cannot be created or an event too large fails alone, a batch the
        broker refuses for a record's sake is retried one event at a time, a broker out of
        reach fails every event it took."""
        results: list[BaseException | None] = [None] * len(requests)
        counts: dict[str, int | BaseException] = {}
        builders: dict[tuple[str, int], tuple[Any, list[int]]] = {}
        sent: list[tuple[str, asyncio.Future[Any], list[int]]] = []
        limit = self.settings.max_request_size
        for index, (topic, event) in enumerate(requests):
            try:
                count = counts.get(topic)
                if count is None:
                    try:
                        count = await self._partition_count(producer, topic)
                    except Exception as exc:  # asked once: every event of the topic fails
                        count = exc
                    counts[topic] = count
                if isinstance(count, BaseException):
                    raise count
                key, value, headers = to_kafka(event)
                size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
                if size > limit:  # as send() checks it: this event's own error
                    raise publish_error(topic, MessageSizeTooLargeError(
                        f"the event is {size} bytes as a record, over max_request_size {limit}"))
            except Exception as exc:
                results[index] = exc
                continue
            partition = self._partitioner.partition(key, count)
            slot = (topic, partition)
            builder, members = builders.get(slot) or (None, [])
            if builder is None or builder.append(
                    key=key, value=value, timestamp=None, headers=headers) is None:
                if builder is not None:  # full: ship it (waits while the partition's last
                    try:                 # batch is in flight)
                        sent.append((topic, await producer.send_batch(
                            builder, topic, partition=partition), members))
                    except KafkaError as exc:
                        self._fail(topic, exc, members, results)
                builder, members = producer.create_batch(), []
                builder.append(key=key, value=value, timestamp=None, headers=headers)
            members.append(index)
            builders[slot] = (builder, members)
        for (topic, partition), (builder, members) in builders.items():
            # closed: nothing more is coming, so the batch goes out without lingering
            builder.close()
            try:
                sent.append((topic, await producer.send_batch(builder, topic, partition=partition),
                             members))
            except KafkaError as exc:
                self._fail(topic, exc, members, results)
        outcomes = await asyncio.gather(*(future for _, future, _ in sent), return_exceptions=True)
        for (topic, _, members), outcome in zip(sent, outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                continue
            if isinstance(outcome, KafkaError) and not is_unavailable(outcome) \
                    and len(members) > 1:  # one record's fault, maybe: each alone
                alone = await singly(lambda i: self._send_one(producer, *requests[i]), members)
                for index, result in zip(members, alone, strict=True):
                    results[index] = result
            elif isinstance(outcome, KafkaError):
                self._fail(topic, outcome, members, results)
            else:
                for index in members:
                    results[index] = outcome
        return results

    def _fail(self, topic: str, exc: KafkaError, members: list[int],
              results: list[BaseException | None]) -> None:
        self._topics_lost(topic)
        error = publish_error(topic, exc)
        error.__cause__ = exc
        for index in members:
            results[index] = error

    async def _send_one(self, producer: AIOKafkaProducer, topic: str, event: CloudEvent) -> None:
        count = await self._partition_count(producer, topic)
        key, value, headers = to_kafka(event)
        partition = self._partitioner.partition(key, count)
        try:
            if key is None and value is None:
                # send() refuses a record with neither key nor value, which is what an event
                # without data and partition key is: it goes as a batch of one
                batch = producer.create_batch()
                batch.append(key=None, value=None, timestamp=None, headers=headers)
                sent = await producer.send_batch(batch, topic, partition=partition)
            else:
                sent = await producer.send(
                    topic, value, key=key, partition=partition, headers=headers
                )
            await sent
        except KafkaError as exc:
            self._topics_lost(topic)
            raise publish_error(topic, exc) from exc

    async def _partition_count(self, producer: AIOKafkaProducer, topic: str) -> int:
        if topic not in self._topics or not self._topics[topic].done():
            await self.ensure_topic(topic)
        try:
            partitions = await producer.partitions_for(topic)
        except KafkaError as exc:
            self._topics_lost(topic)
            raise publish_error(topic, exc) from exc
        return len(partitions)

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


class _Partitioner:
    """Kafka's default partitioning, so other clients agree on a key's partition: murmur2 of
    the key (as the Java client and aiokafka compute it), cached because murmur2 is pure
    Python here; records without a key go round-robin."""

    MAX_CACHED = 65_536

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, int], int] = {}
        self._next = 0

    def partition(self, key: bytes | None, count: int) -> int:
        if key is None:
            self._next += 1
            return self._next % count
        slot = (key, count)
        partition = self._cache.get(slot)
        if partition is None:
            if len(self._cache) >= self.MAX_CACHED:
                self._cache.clear()
            partition = self._cache[slot] = (murmur2(key) & 0x7FFFFFFF) % count
        return partition


def _done_future() -> asyncio.Future[None]:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_result(None)
    return future


def _topic_errors(response: Any) -> list[tuple[str, int, str | None]]:
    """(topic, error code, message) from any CreateTopics response version."""
    return [(item[0], item[1], item[2] if len(item) > 2 else None)
            for item in response.topic_errors]
