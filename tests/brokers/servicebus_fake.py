"""A FAKE Azure Service Bus namespace, in memory. It stands in for Azure because no Service Bus
server can run on this machine: RabbitMQ 3.10 refuses the SDK's ``$cbs`` link (and the SDK then
hangs) and the official emulator needs Docker (see FIELD-NOTES.md). Nothing here proves that
the adapter works against Azure; the live tests in test_servicebus.py do that when
TETHER_SERVICEBUS_CONNECTION_STRING is set.

It implements the adapter's seam (:class:`tether.brokers.servicebus.ServiceBusClients`) with
the behaviour Azure documents for what the adapter uses:

* topics fan out to subscriptions whose rules match (true filters, and SQL filters made of
  ``EXISTS(p)``, ``NOT EXISTS(p)``, ``p = 'v'`` and ``p <> 'v'`` terms joined by OR); a topic
  without subscriptions drops what is sent to it;
* peek-lock receive in sequence order; complete, abandon (delivery count + 1, dead-lettered
  with ``MaxDeliveryCountExceeded`` once it reaches the subscription's max delivery count)
  and dead-letter with reason and description;
* sessions: a session receiver accepts the next session that has messages and nobody holds;
  a subscription that requires sessions dead-letters a message without a session id;
* scheduled messages become visible at their enqueue time;
* the dead-letter sub-queue, or forwarding of it (``forward_dead_lettered_messages_to``) with
  the ``DeadLetterReason`` / ``DeadLetterErrorDescription`` properties and the dead-letter
  source annotation;
* every message goes through the SDK's own AMQP encoder and decoder, so the adapter reads a
  real ``ServiceBusReceivedMessage`` (bytes property names and values included), and the
  wire delivery count starts at 0 as Service Bus sends it.

Not modelled: lock expiry in time (locks are held until settled; a receiver that closes loses
its locks at once, counting a delivery, where Azure would wait for the lock duration), TTL,
duplicate detection, partitioned entities, transactions, quotas and throttling.

``replay_to_new_subscriptions=True`` is NOT Azure behaviour: a subscription created after a
message was sent never receives it on Azure. The shared contract suite publishes before it
subscribes (as Kafka consumer groups allow), so its harness turns this on to stand in for
subscriptions declared ahead of time; a new subscription then gets, when its first receiver
opens, the topic's earlier messages that pass its rules.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch, ServiceBusReceivedMessage
from azure.servicebus._pyamqp._encode import encode_payload  # the SDK's own AMQP encoder
from azure.servicebus._transport._pyamqp_transport import PyamqpTransport
from azure.servicebus.amqp import AmqpMessageHeader
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageLockLostError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusError,
    SessionLockLostError,
)
from azure.servicebus.management import SqlRuleFilter, TrueRuleFilter

MAX_BATCH_BYTES = 256 * 1024  # the Standard tier's message size limit
LOCK_DURATION_MS = 60_000


def _now() -> datetime:
    return datetime.now(UTC)


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


@dataclass(eq=False)
class FakeServiceBusStoredMessage:
    """A message as one subscription (or the topic's history) holds it."""

    sequence_number: int
    message: ServiceBusMessage
    visible_at: datetime
    extra_properties: dict[str, Any] = field(default_factory=dict)
    dead_letter_source: str | None = None
    delivery_count: int = 0  # failed deliveries so far: the AMQP header value
    lock_token: str | None = None
    holder: FakeServiceBusReceiver | None = None

    @property
    def session_id(self) -> str | None:
        return self.message.session_id

    @property
    def properties(self) -> dict[str, Any]:
        merged: dict[str, Any] = {
            (k.decode() if isinstance(k, bytes) else k): v
            for k, v in (self.message.application_properties or {}).items()
        }
        merged.update(self.extra_properties)
        return merged

    def fresh_copy(self) -> FakeServiceBusStoredMessage:
        return FakeServiceBusStoredMessage(
            self.sequence_number, self.message, self.visible_at,
            dict(self.extra_properties), self.dead_letter_source,
        )

    def received(self) -> ServiceBusReceivedMessage:
        """What a receiver gets: encoded and decoded by the SDK, with the broker's sections."""
        amqp = copy.deepcopy(self.message.raw_amqp_message)
        header = amqp.header or AmqpMessageHeader()
        header.delivery_count = self.delivery_count
        amqp.header = header
        properties: dict[str | bytes, Any] = dict(amqp.application_properties or {})
        properties.update(self.extra_properties)
        amqp.application_properties = properties
        annotations: dict[Any, Any] = dict(amqp.annotations or {})
        annotations[b"x-opt-sequence-number"] = self.sequence_number
        annotations[b"x-opt-enqueued-time"] = _ms(self.visible_at)
        annotations[b"x-opt-locked-until"] = _ms(_now()) + LOCK_DURATION_MS
        if self.dead_letter_source is not None:
            annotations[b"x-opt-deadletter-source"] = self.dead_letter_source
        amqp.annotations = annotations
        amqp.delivery_annotations = {b"x-opt-lock-token": uuid.UUID(self.lock_token)}
        wire = encode_payload(bytearray(), PyamqpTransport.to_outgoing_amqp_message(amqp))
        return ServiceBusReceivedMessage.from_bytes(bytes(wire))


@dataclass(eq=False)
class FakeServiceBusSubscription:
    topic: str
    name: str
    requires_session: bool
    max_delivery_count: int
    forward_dead_lettered_messages_to: str | None
    created_before: int  # sequence numbers below this were sent before it existed
    rules: dict[str, Any] = field(default_factory=lambda: {"$Default": TrueRuleFilter()})
    messages: list[FakeServiceBusStoredMessage] = field(default_factory=list)
    dead_letters: list[FakeServiceBusStoredMessage] = field(default_factory=list)
    session_holders: dict[str, FakeServiceBusReceiver] = field(default_factory=dict)
    replayed: bool = False

    def matches(self, stored: FakeServiceBusStoredMessage) -> bool:
        return any(_rule_matches(rule, stored.properties) for rule in self.rules.values())

    def available(self, session_id: str | None = None) -> list[FakeServiceBusStoredMessage]:
        now = _now()
        return [
            m for m in self.messages
            if m.lock_token is None and m.visible_at <= now
            and (session_id is None or m.session_id == session_id)
        ]

    def next_visible(self) -> datetime | None:
        future = [m.visible_at for m in self.messages if m.visible_at > _now()]
        return min(future) if future else None


@dataclass(eq=False)
class FakeServiceBusTopic:
    name: str
    subscriptions: dict[str, FakeServiceBusSubscription] = field(default_factory=dict)
    history: list[FakeServiceBusStoredMessage] = field(default_factory=list)


class FakeServiceBusNamespace:
    """The in-memory "server" shared by every client made from it (one process only)."""

    def __init__(self, name: str = "fake", *, replay_to_new_subscriptions: bool = False) -> None:
        self.host = f"{name}.servicebus.windows.net"
        self.replay_to_new_subscriptions = replay_to_new_subscriptions
        self.topics: dict[str, FakeServiceBusTopic] = {}
        self._sequence = itertools.count(1)
        self._changed: asyncio.Event | None = None

    def clients(self) -> FakeServiceBusClients:
        return FakeServiceBusClients(self)

    def subscription(self, topic: str, name: str) -> FakeServiceBusSubscription:
        return self._topic(topic).subscriptions[name]

    # --- routing ----------------------------------------------------------------------------
    def send(
        self,
        topic: str,
        message: ServiceBusMessage,
        visible_at: datetime | None = None,
        *,
        extra_properties: dict[str, Any] | None = None,
        dead_letter_source: str | None = None,
    ) -> int:
        state = self._topic(topic)
        stored = FakeServiceBusStoredMessage(
            next(self._sequence), message, visible_at or _now(),
            dict(extra_properties or {}), dead_letter_source,
        )
        if self.replay_to_new_subscriptions:
            state.history.append(stored)
        for subscription in state.subscriptions.values():
            if subscription.matches(stored):
                self._arrive(subscription, stored.fresh_copy())
        self.wake()
        return stored.sequence_number

    def _arrive(self, sub: FakeServiceBusSubscription, stored: FakeServiceBusStoredMessage) -> None:
        if sub.requires_session and stored.session_id is None:
            # what Azure does with a session-less message on a session subscription
            self.dead_letter(sub, stored, "Session id is null.",
                             "Session enabled entity doesn't allow a message whose session "
                             "identifier is null.")
            return
        sub.messages.append(stored)

    def dead_letter(
        self, sub: FakeServiceBusSubscription, stored: FakeServiceBusStoredMessage,
        reason: str | None, description: str | None,
    ) -> None:
        if stored in sub.messages:
            sub.messages.remove(stored)
        stored.lock_token, stored.holder = None, None
        properties = dict(stored.extra_properties)
        if reason is not None:
            properties["DeadLetterReason"] = reason
        if description is not None:
            properties["DeadLetterErrorDescription"] = description
        target = sub.forward_dead_lettered_messages_to
        if target is None:
            stored.extra_properties = properties
            sub.dead_letters.append(stored)
            return
        self.send(target, stored.message, extra_properties=properties,
                  dead_letter_source=f"{sub.topic}/Subscriptions/{sub.name}")

    def replay_into(self, sub: FakeServiceBusSubscription) -> None:
        """See the module docstring: NOT Azure behaviour, opt-in for the contract harness."""
        if sub.replayed or not self.replay_to_new_subscriptions:
            return
        sub.replayed = True
        earlier = [
            m.fresh_copy() for m in self._topic(sub.topic).history
            if m.sequence_number < sub.created_before and sub.matches(m)
        ]
        kept = list(sub.messages)
        sub.messages = []
        for stored in earlier:
            self._arrive(sub, stored)
        sub.messages.extend(kept)

    # --- waiting ------------------------------------------------------------------------------
    def wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
        self._changed = None

    async def wait(self, deadline: float, until: datetime | None) -> bool:
        """Wait for a change, for ``until`` or for ``deadline`` (loop time); False when the
        deadline passed."""
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            return False
        if until is not None:
            remaining = min(remaining, max((until - _now()).total_seconds(), 0.001))
        if self._changed is None:
            self._changed = asyncio.Event()
        try:
            await asyncio.wait_for(self._changed.wait(), remaining)
        except TimeoutError:
            pass
        return True

    def next_sequence(self) -> int:
        return next(self._sequence)

    def _topic(self, name: str) -> FakeServiceBusTopic:
        state = self.topics.get(name)
        if state is None:
            raise MessagingEntityNotFoundError(message=f"topic {name!r} not found")
        return state


class FakeServiceBusClients:
    """The seam, over a fake namespace."""

    def __init__(self, namespace: FakeServiceBusNamespace) -> None:
        self.namespace = namespace
        self.opened = False

    async def open(self) -> None:
        self.opened = True

    def admin(self) -> FakeServiceBusAdministrationClient:
        return FakeServiceBusAdministrationClient(self.namespace)

    def sender(self, topic: str) -> FakeServiceBusSender:
        return FakeServiceBusSender(self.namespace, topic)

    async def open_receiver(
        self, topic: str, subscription: str, *, session: bool, max_wait_time: float
    ) -> FakeServiceBusReceiver:
        self._check_open()
        ns = self.namespace
        sub = ns.subscription(topic, subscription)
        ns.replay_into(sub)
        if session != sub.requires_session:
            raise ServiceBusError(
                "a session subscription needs a session receiver and the reverse"
            )
        if not session:
            return FakeServiceBusReceiver(ns, sub, None)
        deadline = asyncio.get_running_loop().time() + max_wait_time
        while True:
            free = [m for m in sub.available() if m.session_id not in sub.session_holders]
            if free:
                session_id = min(free, key=lambda m: m.sequence_number).session_id
                assert session_id is not None
                receiver = FakeServiceBusReceiver(ns, sub, session_id)
                sub.session_holders[session_id] = receiver
                return receiver
            if not await ns.wait(deadline, sub.next_visible()):
                raise OperationTimeoutError(message="no session available")

    async def close(self) -> None:
        self.opened = False

    def _check_open(self) -> None:
        if not self.opened:
            raise ServiceBusError("client not opened")


class FakeServiceBusSender:
    def __init__(self, namespace: FakeServiceBusNamespace, topic: str) -> None:
        self.namespace, self.topic = namespace, topic
        self.closed = False

    async def send_messages(self, message: ServiceBusMessage | ServiceBusMessageBatch) -> None:
        self._check()
        # the batch keeps the messages it accepted in a private list
        messages = message._messages if isinstance(message, ServiceBusMessageBatch) else [message]
        for one in messages:
            self.namespace.send(self.topic, one)

    async def schedule_messages(
        self, messages: ServiceBusMessage, schedule_time_utc: datetime
    ) -> list[int]:
        self._check()
        return [self.namespace.send(self.topic, messages, schedule_time_utc)]

    async def create_message_batch(self) -> ServiceBusMessageBatch:
        return ServiceBusMessageBatch(max_size_in_bytes=MAX_BATCH_BYTES)

    async def close(self) -> None:
        self.closed = True

    def _check(self) -> None:
        if self.closed:
            raise ServiceBusError("sender closed")
        self.namespace._topic(self.topic)


class FakeServiceBusReceiver:
    def __init__(
        self,
        namespace: FakeServiceBusNamespace,
        subscription: FakeServiceBusSubscription,
        session_id: str | None,
    ) -> None:
        self.namespace, self.subscription, self.session_id = namespace, subscription, session_id
        self.closed = False
        self._settled: set[str] = set()

    async def receive_messages(
        self, max_message_count: int | None = 1, max_wait_time: float | None = None
    ) -> list[ServiceBusReceivedMessage]:
        ns, sub = self.namespace, self.subscription
        deadline = asyncio.get_running_loop().time() + (max_wait_time or 60.0)
        await asyncio.sleep(0)  # a receive is a network round trip: others run meanwhile
        while True:
            self._check()
            ready = sub.available(self.session_id)
            if ready:
                batch = ready[: max_message_count or 1]
                for stored in batch:
                    stored.lock_token, stored.holder = str(uuid.uuid4()), self
                return [stored.received() for stored in batch]
            if not await ns.wait(deadline, sub.next_visible()):
                return []

    async def complete_message(self, message: ServiceBusReceivedMessage) -> None:
        stored = self._locked(message)
        self.subscription.messages.remove(stored)
        self.namespace.wake()

    async def abandon_message(self, message: ServiceBusReceivedMessage) -> None:
        self._lapse(self._locked(message))

    async def dead_letter_message(
        self,
        message: ServiceBusReceivedMessage,
        reason: str | None = None,
        error_description: str | None = None,
    ) -> None:
        stored = self._locked(message)
        self.namespace.dead_letter(self.subscription, stored, reason, error_description)
        self.namespace.wake()

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for stored in [m for m in self.subscription.messages if m.holder is self]:
            self._lapse(stored)
        if self.session_id is not None:
            self.subscription.session_holders.pop(self.session_id, None)
        self.namespace.wake()

    def _lapse(self, stored: FakeServiceBusStoredMessage) -> None:
        """Abandoned, or its lock lost: one more failed delivery."""
        stored.lock_token, stored.holder = None, None
        stored.delivery_count += 1
        limit = self.subscription.max_delivery_count
        if stored.delivery_count >= limit:
            self.namespace.dead_letter(
                self.subscription, stored, "MaxDeliveryCountExceeded",
                f"Message could not be consumed after {limit} delivery attempts.",
            )
        self.namespace.wake()

    def _locked(self, message: ServiceBusReceivedMessage) -> FakeServiceBusStoredMessage:
        token = str(message.lock_token)
        if token in self._settled:
            raise MessageAlreadySettled(action="settle")
        self._check()
        for stored in self.subscription.messages:
            if stored.lock_token == token and stored.holder is self:
                self._settled.add(token)
                return stored
        raise MessageLockLostError(message="the message lock was lost")

    def _check(self) -> None:
        if self.closed:
            raise ServiceBusError("receiver closed")
        if (self.session_id is not None
                and self.subscription.session_holders.get(self.session_id) is not self):
            raise SessionLockLostError(message="the session lock was lost")


class FakeServiceBusAdministrationClient:
    def __init__(self, namespace: FakeServiceBusNamespace) -> None:
        self.namespace = namespace

    async def get_namespace_properties(self) -> Any:
        return SimpleNamespace(name=self.namespace.host.split(".")[0])

    async def get_topic(self, topic_name: str) -> Any:
        if topic_name not in self.namespace.topics:
            raise ResourceNotFoundError(f"topic {topic_name!r} not found")
        return SimpleNamespace(name=topic_name)

    async def create_topic(self, topic_name: str, **kwargs: Any) -> Any:
        if topic_name in self.namespace.topics:
            raise ResourceExistsError(f"topic {topic_name!r} exists")
        self.namespace.topics[topic_name] = FakeServiceBusTopic(topic_name)
        return SimpleNamespace(name=topic_name)

    async def get_subscription(self, topic_name: str, subscription_name: str) -> Any:
        sub = self._subscription(topic_name, subscription_name)
        target = sub.forward_dead_lettered_messages_to
        return SimpleNamespace(
            name=sub.name,
            requires_session=sub.requires_session,
            max_delivery_count=sub.max_delivery_count,
            # Azure answers with the full URL of the target entity
            forward_dead_lettered_messages_to=(
                f"https://{self.namespace.host}/{target}" if target else None
            ),
        )

    async def create_subscription(
        self,
        topic_name: str,
        subscription_name: str,
        *,
        requires_session: bool = False,
        max_delivery_count: int = 10,
        forward_dead_lettered_messages_to: str | None = None,
        **kwargs: Any,
    ) -> Any:
        topic = self.namespace.topics.get(topic_name)
        if topic is None:
            raise ResourceNotFoundError(f"topic {topic_name!r} not found")
        if subscription_name in topic.subscriptions:
            raise ResourceExistsError(f"subscription {subscription_name!r} exists")
        if forward_dead_lettered_messages_to and (
            forward_dead_lettered_messages_to not in self.namespace.topics
        ):
            raise ResourceNotFoundError(f"forward target {forward_dead_lettered_messages_to!r}")
        topic.subscriptions[subscription_name] = FakeServiceBusSubscription(
            topic_name, subscription_name, requires_session, max_delivery_count,
            forward_dead_lettered_messages_to, created_before=self.namespace.next_sequence(),
        )
        return await self.get_subscription(topic_name, subscription_name)

    async def get_rule(self, topic_name: str, subscription_name: str, rule_name: str) -> Any:
        rules = self._subscription(topic_name, subscription_name).rules
        if rule_name not in rules:
            raise ResourceNotFoundError(f"rule {rule_name!r} not found")
        return SimpleNamespace(name=rule_name, filter=rules[rule_name])

    async def create_rule(
        self, topic_name: str, subscription_name: str, rule_name: str, *, filter: Any,
        **kwargs: Any,
    ) -> Any:
        rules = self._subscription(topic_name, subscription_name).rules
        if rule_name in rules:
            raise ResourceExistsError(f"rule {rule_name!r} exists")
        _rule_matches(filter, {})  # refuse what the fake cannot evaluate, up front
        rules[rule_name] = filter
        return SimpleNamespace(name=rule_name, filter=filter)

    async def delete_rule(self, topic_name: str, subscription_name: str, rule_name: str) -> None:
        rules = self._subscription(topic_name, subscription_name).rules
        if rules.pop(rule_name, None) is None:
            raise ResourceNotFoundError(f"rule {rule_name!r} not found")

    async def close(self) -> None:
        pass

    def _subscription(self, topic: str, name: str) -> FakeServiceBusSubscription:
        state = self.namespace.topics.get(topic)
        if state is None or name not in state.subscriptions:
            raise ResourceNotFoundError(f"subscription {topic}/{name} not found")
        return state.subscriptions[name]


# --- the small SQL filter subset ------------------------------------------------------------------
_TERM = re.compile(
    r"^(?:(?P<not>NOT\s+)?EXISTS\((?P<exists>\w+)\)"
    r"|(?P<prop>\w+)\s*(?P<op>=|<>)\s*'(?P<value>[^']*)')$",
    re.IGNORECASE,
)


def _rule_matches(rule: Any, properties: dict[str, Any]) -> bool:
    if isinstance(rule, TrueRuleFilter):
        return True
    if not isinstance(rule, SqlRuleFilter):
        raise NotImplementedError(f"the fake does not evaluate {type(rule).__name__}")
    return any(
        _term_matches(term.strip(), properties)
        for term in re.split(r"\s+OR\s+", rule.sql_expression or "", flags=re.IGNORECASE)
    )


def _term_matches(term: str, properties: dict[str, Any]) -> bool:
    found = _TERM.match(term)
    if found is None:
        raise NotImplementedError(f"the fake does not evaluate the SQL filter term {term!r}")
    if found["exists"]:
        return (found["exists"] in properties) != bool(found["not"])
    if found["prop"] not in properties:
        return False  # SQL: comparing a missing property is unknown, which does not match
    value = properties[found["prop"]]
    text = value.decode() if isinstance(value, bytes) else str(value)
    return (text == found["value"]) == (found["op"] == "=")
