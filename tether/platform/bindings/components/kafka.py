"""``bindings.kafka``: publish records to a topic (output ``create``) and read the records of
``topics`` in a consumer group (input), through aiokafka.

Input: one consumer in ``consumerGroup`` with auto-commit off. Records are emitted one at a
time in partition order and each record's offset is committed only after ``emit`` returned,
so a crash between read and emit loses nothing: the group re-reads from the last commit. A
record whose emit failed is sought back to and the error propagates (the consumer leaves the
group; the next run re-reads it). Many replicas share the partitions, so the source is not
exclusive.

Tansu (the test broker) numbers group generations from 0 and aiokafka sends no LeaveGroup in
generation 0, so a graceful stop would look like a crash to the group (the next join waits a
session timeout): the consumer leaves explicitly then (see ``tether.brokers.kafka``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
    MessageSizeTooLargeError,
)
from aiokafka.protocol.group import LeaveGroupRequest

from tether.brokers.kafka.logs import quiet_aiokafka_repeats
from tether.platform.bindings.binding import (
    CREATE,
    Binding,
    BindingFailedError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
    Emit,
    InputMessage,
)
from tether.platform.components import Component, metadata
from tether.platform.components.metadata import MetadataError

log = logging.getLogger(__name__)

#: request metadata naming the record key: Tether's ``key``, Dapr's ``partitionKey`` and the
#: ``__key`` an input binding hands on (so a record can be forwarded as it came)
KEY_FIELDS = ("key", "partitionKey", "__key")
#: how long connecting (producer start, consumer start) may take
CONNECT_TIMEOUT = 10.0
#: one request to the broker
REQUEST_TIMEOUT_MS = 30_000
#: how long a fetch waits on the broker for data (tansu answers only when it runs out)
FETCH_MAX_WAIT_MS = 100
DEFAULT_MAX_MESSAGE_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """The component's metadata, read once in :func:`build`."""

    brokers: tuple[str, ...]
    topics: tuple[str, ...]
    publish_topic: str | None
    consumer_group: str | None
    oldest: bool
    max_message_bytes: int
    session_timeout_ms: int
    heartbeat_interval_ms: int
    client_id: str

    @classmethod
    def from_component(cls, component: Component) -> KafkaSettings:
        brokers = _list(metadata.required(component, "brokers", "host:port[,host:port]"))
        for broker in brokers:
            host, sep, port = broker.rpartition(":")
            if not sep or not host or not port.isascii() or not port.isdigit():
                raise MetadataError("brokers", f"{broker!r} is not host:port")
        auth = (metadata.text(component, "authType") or "none").lower()
        if auth != "none":
            raise MetadataError("authType", f"{auth!r} is not supported (only none)")
        if metadata.boolean(component, "authRequired"):
            raise MetadataError("authRequired", "true is not supported (SASL/TLS are not "
                                                "implemented; use authType none)")
        topics = _list(metadata.text(component, "topics") or "")
        group = metadata.text(component, "consumerGroup")
        if topics and group is None:
            raise MetadataError("consumerGroup", "is required when topics is set")
        offset = (metadata.text(component, "initialOffset") or "newest").lower()
        if offset not in ("newest", "oldest"):
            raise MetadataError("initialOffset", f"{offset!r} must be newest or oldest")
        max_bytes = metadata.integer(component, "maxMessageBytes", minimum=1)
        session = metadata.duration(component, "sessionTimeout", 10.0)
        heartbeat = metadata.duration(component, "heartbeatInterval", 3.0)
        if heartbeat >= session:
            raise MetadataError("heartbeatInterval", "must be shorter than sessionTimeout")
        return cls(
            brokers=brokers,
            topics=topics,
            publish_topic=metadata.text(component, "publishTopic"),
            consumer_group=group,
            oldest=offset == "oldest",
            max_message_bytes=max_bytes or DEFAULT_MAX_MESSAGE_BYTES,
            session_timeout_ms=int(session * 1000),
            heartbeat_interval_ms=int(heartbeat * 1000),
            client_id=metadata.text(component, "clientID") or "tether",
        )

    def client_options(self) -> dict[str, Any]:
        return {"bootstrap_servers": list(self.brokers), "client_id": self.client_id,
                "request_timeout_ms": REQUEST_TIMEOUT_MS}


def _list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build(component: Component) -> Binding:
    settings = KafkaSettings.from_component(component)
    direction = metadata.text(component, "direction") or ""
    if "output" in direction and settings.publish_topic is None:
        raise MetadataError("publishTopic", "is required for the output direction")
    if "input" in direction and not settings.topics:
        raise MetadataError("topics", "is required for the input direction")
    if settings.publish_topic is None and not settings.topics:
        raise MetadataError("publishTopic", "or topics is required")
    return Binding(
        name=component.name,
        type=component.type,
        output=KafkaOutput(settings) if settings.publish_topic else None,
        input=KafkaInput(settings) if settings.topics else None,
    )


class KafkaOutput:
    """``create``: one record on ``publishTopic``, acknowledged by all in-sync replicas."""

    operations = frozenset({CREATE})

    def __init__(self, settings: KafkaSettings) -> None:
        assert settings.publish_topic is not None
        self.settings = settings
        self.topic = settings.publish_topic
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        if self._producer is not None:
            return
        quiet_aiokafka_repeats()
        producer = AIOKafkaProducer(
            **self.settings.client_options(),
            acks="all",
            enable_idempotence=False,  # tansu and some managed brokers refuse InitProducerId
            max_request_size=self.settings.max_message_bytes,
        )
        try:
            await asyncio.wait_for(producer.start(), CONNECT_TIMEOUT)
        except (KafkaError, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise BindingFailedError(
                f"cannot reach Kafka at {','.join(self.settings.brokers)}: {exc!r}") from exc
        self._producer = producer

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        producer = self._producer
        if producer is None:
            raise BindingFailedError("the Kafka producer is not started")
        key, headers = _key_and_headers(request.metadata)
        try:
            await producer.send_and_wait(
                self.topic, value=request.data, key=key, headers=headers or None)
        except MessageSizeTooLargeError as exc:
            raise BindingRequestError(
                f"the record is larger than maxMessageBytes "
                f"({self.settings.max_message_bytes}): {exc}") from exc
        except (KafkaError, OSError) as exc:
            raise BindingFailedError(f"publishing to {self.topic!r} failed: {exc!r}") from exc
        return BindingResponse()

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(KafkaError, OSError):
                await producer.stop()


def _key_and_headers(
    fields: Mapping[str, str],
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The record key (the first key field set) and the other request metadata as headers."""
    key = next((fields[name] for name in KEY_FIELDS if fields.get(name)), None)
    headers = [(name, value.encode()) for name, value in fields.items()
               if name not in KEY_FIELDS]
    return (key.encode() if key is not None else None), headers


class KafkaInput:
    """Reads ``topics`` as one member of ``consumerGroup``; see the module docstring."""

    exclusive = False

    def __init__(self, settings: KafkaSettings) -> None:
        assert settings.consumer_group is not None
        self.settings = settings
        self.group = settings.consumer_group
        self._consumer: AIOKafkaConsumer | None = None

    async def run(self, emit: Emit) -> None:
        quiet_aiokafka_repeats()
        settings = self.settings
        consumer = AIOKafkaConsumer(
            *settings.topics,
            **settings.client_options(),
            group_id=self.group,
            enable_auto_commit=False,
            # a new group (no committed offset) starts where initialOffset says
            auto_offset_reset="earliest" if settings.oldest else "latest",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            # a slow emit (the app's topic is busy) is not a stuck consumer
            max_poll_interval_ms=2**31 - 1,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            max_partition_fetch_bytes=max(settings.max_message_bytes,
                                          DEFAULT_MAX_MESSAGE_BYTES),
        )
        self._consumer = consumer
        try:
            try:
                await asyncio.wait_for(consumer.start(), CONNECT_TIMEOUT)
            except (KafkaError, OSError, TimeoutError) as exc:
                raise BindingFailedError(
                    f"cannot start a Kafka consumer for {', '.join(settings.topics)}: "
                    f"{exc!r}") from exc
            while True:
                try:
                    batches = await consumer.getmany(timeout_ms=1000)
                except KafkaError as exc:
                    raise BindingFailedError(f"reading from Kafka failed: {exc!r}") from exc
                for partition, records in batches.items():
                    for record in records:
                        await self._deliver(consumer, partition, record, emit)
        finally:
            if self._consumer is consumer:  # else close() stopped it already
                self._consumer = None
                await self._stop(consumer)

    async def _deliver(self, consumer: AIOKafkaConsumer, partition: TopicPartition,
                       record: Any, emit: Emit) -> None:
        try:
            await emit(_message(record))
        except BaseException:
            # not acknowledged: the next fetch (or the partition's next owner) starts here
            with contextlib.suppress(IllegalStateError):
                consumer.seek(partition, record.offset)
            raise
        try:
            await consumer.commit({partition: record.offset + 1})
        except (CommitFailedError, IllegalStateError) as exc:
            # a rebalance took the partition: its new owner reads the record again
            log.warning("%s: committing %s@%d failed (%s); it will be read again",
                        self.group, partition, record.offset, exc)
        except KafkaError as exc:
            raise BindingFailedError(f"committing {partition}@{record.offset} failed: "
                                     f"{exc!r}") from exc

    async def _stop(self, consumer: AIOKafkaConsumer) -> None:
        coordinator = getattr(consumer, "_coordinator", None)
        member_id = getattr(coordinator, "member_id", "")
        generation = getattr(coordinator, "generation", -1)
        with contextlib.suppress(KafkaError, OSError):
            await consumer.stop()
        if generation == 0 and member_id:
            await self._leave_group(member_id)

    async def _leave_group(self, member_id: str) -> None:
        """LeaveGroup for a member aiokafka did not let go (generation 0, see above)."""
        admin = AIOKafkaAdminClient(**self.settings.client_options())
        try:
            await asyncio.wait_for(admin.start(), CONNECT_TIMEOUT)
            node = await admin.find_coordinator(self.group)
            await admin._send_request_to_node(node, LeaveGroupRequest(self.group, member_id))
        except (KafkaError, OSError, TimeoutError) as exc:
            log.debug("LeaveGroup for %s in %s failed: %s", member_id, self.group, exc)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await self._stop(consumer)


def _message(record: Any) -> InputMessage:
    """A record as Dapr's Kafka binding hands it on: the headers plus ``__key``,
    ``__topic``, ``__partition``, ``__offset`` and ``__timestamp`` (milliseconds)."""
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    fields: dict[str, str] = {
        name: value.decode("utf-8", "replace") for name, value in record.headers or ()
        if value is not None
    }
    if key is not None:
        fields["__key"] = key
    fields["__topic"] = record.topic
    fields["__partition"] = str(record.partition)
    fields["__offset"] = str(record.offset)
    fields["__timestamp"] = str(record.timestamp)
    return InputMessage(data=record.value or b"", metadata=fields, key=key)
