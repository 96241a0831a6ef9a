"""The Service Bus Broker: connecting, publishing (sessions from keys, batches that fit),
subscriptions and declaring groups (docs/brokers-servicebus.md)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

from azure.servicebus import ServiceBusMessage
from azure.servicebus.exceptions import MessageSizeExceededError

from tether.brokers.base import (
    DEFAULT_PARTITIONS,
    Broker,
    BrokerClosedError,
    BrokerConfigError,
    BrokerError,
    SubscribeOptions,
)
from tether.brokers.servicebus.clients import Sender, ServiceBusClients
from tether.brokers.servicebus.codec import to_servicebus
from tether.brokers.servicebus.entities import Entities, check_names
from tether.brokers.servicebus.errors import translated
from tether.brokers.servicebus.settings import ServiceBusSettings
from tether.brokers.servicebus.subscription import ServiceBusSubscription
from tether.platform.events import CloudEvent

#: keyless events are spread over this many session ids (``tether-keyless-<n>``)
KEYLESS_SESSIONS = 16


class ServiceBusBroker(Broker):
    #: scheduled enqueue holds a delayed event in the topic until due (docs/delivery.md)
    schedules_natively = True

    def __init__(
        self, clients: ServiceBusClients, url: str, settings: ServiceBusSettings | None = None
    ) -> None:
        self.clients = clients
        self.url = url
        self.settings = settings or ServiceBusSettings()
        self._entities = Entities(clients, self.settings)
        self._senders: dict[str, Sender] = {}
        self._subscriptions: list[ServiceBusSubscription] = []
        self._keyless = itertools.count()
        self._connected = False

    async def connect(self) -> None:
        if self._connected:
            return
        try:
            async with translated("connect"):
                await self.clients.open()
                if self.settings.manage_entities:  # a cheap call that proves reach and rights
                    await self.clients.admin().get_namespace_properties()
        except BrokerError:
            await self.clients.close()
            raise
        self._connected = True

    async def close(self, drain_timeout: float = 30.0) -> None:
        if not self._connected:
            return
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.close(drain_timeout) for s in subscriptions))
        self._connected = False
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            with contextlib.suppress(Exception):
                await sender.close()
        await self.clients.close()

    async def create_topic(self, topic: str, partitions: int = DEFAULT_PARTITIONS) -> None:
        """Service Bus topics have no partitions: concurrency comes from sessions (keys), so
        ``partitions`` is checked and otherwise ignored."""
        self._check_open()
        if partitions < 1:
            raise BrokerConfigError("partitions must be at least 1")
        await self._entities.ensure_topic(topic)

    async def publish(self, topic: str, event: CloudEvent) -> None:
        await self.publish_batch(topic, (event,))

    async def publish_batch(self, topic: str, events: Sequence[CloudEvent]) -> None:
        self._check_open()
        if not events:
            return
        await self._entities.ensure_topic(topic)
        sender = self.sender_for(topic)
        async with translated(f"publish to {topic}"):
            if len(events) == 1:
                await sender.send_messages(self._message(events[0]))
                return
            batch = await sender.create_message_batch()
            for event in events:
                message = self._message(event)
                try:
                    batch.add_message(message)
                except MessageSizeExceededError:
                    if len(batch) == 0:
                        raise
                    await sender.send_messages(batch)
                    batch = await sender.create_message_batch()
                    batch.add_message(message)
            await sender.send_messages(batch)

    async def publish_scheduled(
        self, topic: str, events: Sequence[tuple[CloudEvent, datetime]]
    ) -> None:
        self._check_open()
        await self._entities.ensure_topic(topic)
        sender = self.sender_for(topic)
        async with translated(f"schedule on {topic}"):
            for event, when in events:
                await sender.schedule_messages(self._message(event), when.astimezone(UTC))

    def subscribe(
        self, topic: str, group: str, options: SubscribeOptions | None = None
    ) -> ServiceBusSubscription:
        self._check_open()
        check_names(topic, group)
        subscription = ServiceBusSubscription(self, topic, group, options)
        self._subscriptions.append(subscription)
        return subscription

    async def declare_group(
        self, topic: str, group: str, options: SubscribeOptions | None = None
    ) -> bool:
        """Make sure group ``group`` has its subscription on ``topic`` (created with
        Tether's settings and retry rule when missing). Events published before a
        subscription exists never reach it, so deployments can call this ahead of the first
        publish. Returns whether the subscription carries Tether's retry rule (needed for
        scheduled retries)."""
        self._check_open()
        check_names(topic, group)
        return await self._entities.declare_group(topic, group, options or SubscribeOptions())

    def sender_for(self, topic: str) -> Sender:
        sender = self._senders.get(topic)
        if sender is None:
            sender = self._senders[topic] = self.clients.sender(topic)
        return sender

    def _message(self, event: CloudEvent) -> ServiceBusMessage:
        keyless = f"tether-keyless-{next(self._keyless) % KEYLESS_SESSIONS}"
        return to_servicebus(event, session_id=keyless)

    def _check_open(self) -> None:
        if not self._connected:
            raise BrokerClosedError(f"broker {self.url} is not connected (closed or never opened)")
