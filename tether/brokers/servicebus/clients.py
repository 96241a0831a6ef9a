"""The seam between the adapter and the SDK: the few azure-servicebus calls the adapter makes
(:class:`ServiceBusClients`), and their real implementation over a connection string.

Tests pass an in-memory fake instead (tests/brokers/servicebus_fake.py): no Service Bus
server or emulator runs on our machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime
from typing import Any, Protocol

from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusMessage,
    ServiceBusMessageBatch,
    ServiceBusReceivedMessage,
)
from azure.servicebus.aio import AutoLockRenewer, ServiceBusClient
from azure.servicebus.management import ServiceBusAdministrationClient, SqlRuleFilter

# the package's logger: one name for the whole backend, as before the split into modules
log = logging.getLogger(__name__)


class Receiver(Protocol):
    """A subscription receiver in PEEK_LOCK mode (plain, or holding one session)."""

    async def receive_messages(
        self, max_message_count: int | None = ..., max_wait_time: float | None = ...
    ) -> list[ServiceBusReceivedMessage]: ...

    async def complete_message(self, message: ServiceBusReceivedMessage) -> None: ...

    async def abandon_message(self, message: ServiceBusReceivedMessage) -> None: ...

    async def dead_letter_message(
        self,
        message: ServiceBusReceivedMessage,
        reason: str | None = ...,
        error_description: str | None = ...,
    ) -> None: ...

    async def close(self) -> None: ...


class Sender(Protocol):
    async def send_messages(self, message: ServiceBusMessage | ServiceBusMessageBatch) -> None: ...

    async def schedule_messages(
        self, messages: ServiceBusMessage, schedule_time_utc: datetime
    ) -> list[int]: ...

    async def create_message_batch(self) -> ServiceBusMessageBatch: ...

    async def close(self) -> None: ...


class Admin(Protocol):
    """The ServiceBusAdministrationClient calls used to create entities."""

    async def get_namespace_properties(self) -> Any: ...

    async def get_topic(self, topic_name: str) -> Any: ...

    async def create_topic(self, topic_name: str) -> Any: ...

    async def get_subscription(self, topic_name: str, subscription_name: str) -> Any: ...

    async def create_subscription(
        self,
        topic_name: str,
        subscription_name: str,
        *,
        requires_session: bool,
        max_delivery_count: int,
        forward_dead_lettered_messages_to: str | None,
    ) -> Any: ...

    async def get_rule(self, topic_name: str, subscription_name: str, rule_name: str) -> Any: ...

    async def create_rule(
        self, topic_name: str, subscription_name: str, rule_name: str, *, filter: SqlRuleFilter
    ) -> Any: ...

    async def delete_rule(
        self, topic_name: str, subscription_name: str, rule_name: str
    ) -> None: ...

    async def close(self) -> None: ...


class ServiceBusClients(Protocol):
    """Where the adapter gets its SDK objects; tests pass a fake."""

    async def open(self) -> None: ...

    def admin(self) -> Admin: ...

    def sender(self, topic: str) -> Sender: ...

    async def open_receiver(
        self, topic: str, subscription: str, *, session: bool, max_wait_time: float
    ) -> Receiver:
        """An open receiver; with ``session`` it has accepted the next available session,
        or raised OperationTimeoutError when none came within ``max_wait_time``."""
        ...

    async def close(self) -> None: ...


class AzureServiceBusClients:
    """The real seam: azure-servicebus aio clients built from a connection string."""

    def __init__(self, connection_string: str, lock_renewal: float) -> None:
        self._connection_string = connection_string
        self._lock_renewal = lock_renewal
        self._client: ServiceBusClient | None = None
        self._admin: _ThreadedAdmin | None = None
        self._renewer: AutoLockRenewer | None = None

    async def open(self) -> None:
        self._client = ServiceBusClient.from_connection_string(self._connection_string)
        self._admin = _ThreadedAdmin(
            ServiceBusAdministrationClient.from_connection_string(self._connection_string)
        )
        self._renewer = AutoLockRenewer(
            max_lock_renewal_duration=self._lock_renewal, on_lock_renew_failure=_lock_lost
        )

    def admin(self) -> Admin:
        assert self._admin is not None, "open() first"
        return self._admin

    def sender(self, topic: str) -> Sender:
        assert self._client is not None, "open() first"
        return self._client.get_topic_sender(topic_name=topic)

    async def open_receiver(
        self, topic: str, subscription: str, *, session: bool, max_wait_time: float
    ) -> Receiver:
        assert self._client is not None, "open() first"
        receiver = self._client.get_subscription_receiver(
            topic,
            subscription,
            session_id=NEXT_AVAILABLE_SESSION if session else None,
            max_wait_time=max_wait_time,
            auto_lock_renewer=self._renewer,  # renews message locks, or the session lock
            prefetch_count=0,  # hold no locked message the adapter does not know about
        )
        try:
            await receiver.__aenter__()  # attaches the link (and accepts a session)
        except BaseException:
            with contextlib.suppress(Exception):
                await receiver.close()
            raise
        return receiver

    async def close(self) -> None:
        for closer in (self._renewer, self._client, self._admin):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer.close()
        self._client = self._admin = self._renewer = None


class _ThreadedAdmin:
    """The synchronous administration client, called in a worker thread.

    The aio administration client needs aiohttp, which azure-servicebus does not install;
    entity management is rare (a topic or subscription on first use), so a thread is cheap.
    """

    def __init__(self, client: ServiceBusAdministrationClient) -> None:
        self._client = client

    async def get_namespace_properties(self) -> Any:
        return await asyncio.to_thread(self._client.get_namespace_properties)

    async def get_topic(self, topic_name: str) -> Any:
        return await asyncio.to_thread(self._client.get_topic, topic_name)

    async def create_topic(self, topic_name: str) -> Any:
        return await asyncio.to_thread(self._client.create_topic, topic_name)

    async def get_subscription(self, topic_name: str, subscription_name: str) -> Any:
        return await asyncio.to_thread(
            self._client.get_subscription, topic_name, subscription_name
        )

    async def create_subscription(
        self,
        topic_name: str,
        subscription_name: str,
        *,
        requires_session: bool,
        max_delivery_count: int,
        forward_dead_lettered_messages_to: str | None,
    ) -> Any:
        return await asyncio.to_thread(
            self._client.create_subscription,
            topic_name,
            subscription_name,
            requires_session=requires_session,
            max_delivery_count=max_delivery_count,
            forward_dead_lettered_messages_to=forward_dead_lettered_messages_to,
        )

    async def get_rule(self, topic_name: str, subscription_name: str, rule_name: str) -> Any:
        return await asyncio.to_thread(
            self._client.get_rule, topic_name, subscription_name, rule_name
        )

    async def create_rule(
        self, topic_name: str, subscription_name: str, rule_name: str, *, filter: SqlRuleFilter
    ) -> Any:
        return await asyncio.to_thread(
            self._client.create_rule, topic_name, subscription_name, rule_name, filter=filter
        )

    async def delete_rule(self, topic_name: str, subscription_name: str, rule_name: str) -> None:
        await asyncio.to_thread(self._client.delete_rule, topic_name, subscription_name, rule_name)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


async def _lock_lost(renewable: Any, error: Exception | None) -> None:
    log.warning("Service Bus lock renewal stopped for %r: %s; it will be redelivered",
                renewable, error)
