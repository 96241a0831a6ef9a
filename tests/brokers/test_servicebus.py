"""The Service Bus backend: the wire mapping, the adapter over the FAKE namespace
(tests/brokers/servicebus_fake.py, because no Service Bus server can run here), and live tests
against a real namespace when TETHER_SERVICEBUS_CONNECTION_STRING is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage

from tests.brokers.helpers import event, nothing_more, take
from tests.brokers.servicebus_fake import (
    FakeServiceBusNamespace,
    FakeServiceBusStoredMessage,
)
from tether.brokers import (
    BrokerClosedError,
    BrokerConfigError,
    BrokerUnavailableError,
    Delivery,
    SubscribeOptions,
    Subscription,
    dead_letter_topic_for,
    open_broker,
)
from tether.brokers.servicebus import (
    DELIVERIES_PROPERTY,
    RETRY_GROUP_PROPERTY,
    ServiceBusBroker,
    ServiceBusSettings,
    from_url,
    record_from,
)
from tether.brokers.servicebus.codec import (
    MAX_SESSION_ID,
    from_servicebus,
    to_servicebus,
)
from tether.brokers.subscription import MALFORMED_EVENT_TYPE
from tether.platform.events import CloudEvent, InvalidCloudEventError

WAIT = 20.0
LIVE_ENV = "TETHER_SERVICEBUS_CONNECTION_STRING"


def over_the_wire(message: ServiceBusMessage, delivery_count: int = 0) -> ServiceBusReceivedMessage:
    """What a receiver gets for ``message``, through the SDK's AMQP encoder and decoder."""
    stored = FakeServiceBusStoredMessage(7, message, datetime.now(UTC))
    stored.lock_token, stored.delivery_count = str(uuid.uuid4()), delivery_count
    return stored.received()


def full_event() -> CloudEvent:
    return CloudEvent(
        id="evt-1",
        type="com.example.order.created",
        source="/orders/eu",
        subject="order-42",
        time=datetime(2026, 11, 24, 12, 30, 5, 123456, tzinfo=UTC),
        datacontenttype="application/octet-stream",
        dataschema="https://example.com/schemas/order",
        data=bytes(range(256)) + b"\x00\xff",
        extensions={
            "partitionkey": "order-42",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "congo=t61rcWkgMzE",
            "tenant": "acme",
        },
    )


# --- the mapping ----------------------------------------------------------------------------------
def test_mapping_puts_attributes_in_prefixed_properties_and_the_key_in_the_session() -> None:
    event = full_event()
    message = to_servicebus(event)
    assert message.session_id == "order-42"
    assert message.content_type == "application/octet-stream"
    assert message.message_id == "evt-1"
    assert b"".join(message.body) == event.data
    properties = message.application_properties or {}
    assert properties["cloudEvents_specversion"] == "1.0"
    assert properties["cloudEvents_time"] == "2026-11-24T12:30:05.123456Z"
    assert properties["cloudEvents_partitionkey"] == "order-42"
    assert properties["cloudEvents_tenant"] == "acme"
    assert "cloudEvents_datacontenttype" not in properties  # it travels as content_type


def test_mapping_round_trip_through_the_sdk_wire() -> None:
    for sent in (
        full_event(),
        CloudEvent(type="t.json", source="/j", data={"note": "zürich", "n": [1, 2]}),
        CloudEvent(type="t.text", source="/t", data="héllo", datacontenttype="text/plain"),
        CloudEvent(type="t.empty", source="/e"),
    ):
        received = from_servicebus(over_the_wire(to_servicebus(sent, session_id="fallback")))
        assert received == sent
        assert received.data == sent.data and type(received.data) is type(sent.data)


def test_keyless_events_take_the_given_session_and_long_keys_are_hashed() -> None:
    keyless = CloudEvent(type="t", source="/s", data=b"x")
    assert to_servicebus(keyless, session_id="tether-keyless-3").session_id == "tether-keyless-3"
    long_key = "k" * (MAX_SESSION_ID + 1)
    keyed = keyless.with_extensions(partitionkey=long_key)
    session = to_servicebus(keyed).session_id
    assert session is not None and len(session) <= MAX_SESSION_ID
    assert session == to_servicebus(keyed).session_id  # stable: one key, one session
    assert from_servicebus(over_the_wire(to_servicebus(keyed))).partitionkey == long_key


def test_mapping_reads_what_other_amqp_producers_send() -> None:
    message = ServiceBusMessage(
        "plain text value",  # the SDK sends str as a data section; also accepted below
        application_properties={
            "cloudEvents:specversion": "1.0",  # the binding's other prefix
            "cloudEvents:id": "x-1",
            "cloudEvents:source": "/other",
            "cloudEvents:type": "other.type",
            # sent as an AMQP timestamp; the SDK reads it back as milliseconds since the epoch
            "cloudEvents_time": datetime(2025, 11, 24, 16, 0, 0, 123000, tzinfo=UTC),  # type: ignore[dict-item]
            "cloudEvents_attempt": 3,  # a typed extension value
            "unrelated": "ignored",
        },
        content_type="text/plain",
    )
    event = from_servicebus(over_the_wire(message))
    assert (event.id, event.source, event.type) == ("x-1", "/other", "other.type")
    assert event.time == datetime(2025, 11, 24, 16, 0, 0, 123000, tzinfo=UTC)
    assert event.extensions == {"attempt": "3"}
    assert event.data == "plain text value"


def test_a_message_that_is_not_a_cloudevent_is_an_error() -> None:
    with pytest.raises(InvalidCloudEventError, match="missing required attribute"):
        from_servicebus(over_the_wire(ServiceBusMessage(b"\x00 junk")))


def test_the_delivery_count_adds_earlier_copies_to_the_service_count() -> None:
    message = to_servicebus(CloudEvent(type="t", source="/s"))
    assert record_from(over_the_wire(message)).delivery_count == 1  # the wire count starts at 0
    message.application_properties = {
        **(message.application_properties or {}), DELIVERIES_PROPERTY: 3
    }
    assert record_from(over_the_wire(message, delivery_count=1)).delivery_count == 5


# --- the URL ------------------------------------------------------------------------------------
SECRET = "c2VjcmV0LWtleQ=="
CONNECTION = (
    f"Endpoint=sb://tether-test.servicebus.windows.net/;SharedAccessKeyName=app;"
    f"SharedAccessKey={SECRET}"
)


def test_url_takes_the_connection_string_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_SB", CONNECTION)
    broker = open_broker("servicebus://?connection_string_env=MY_SB&sessions=false&max_sessions=3")
    assert isinstance(broker, ServiceBusBroker)
    assert broker.settings == ServiceBusSettings(sessions=False, max_sessions=3)
    assert broker.url.startswith("servicebus://tether-test.servicebus.windows.net?")
    assert SECRET not in broker.url and "MY_SB" in broker.url
    monkeypatch.setenv(LIVE_ENV, CONNECTION)
    named = from_url("servicebus://tether-test.servicebus.windows.net?max_delivery_count=5")
    assert named.settings.max_delivery_count == 5


def test_url_errors_name_the_problem_without_echoing_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(BrokerConfigError, match="environment variable NOPE"):
        from_url("servicebus://?connection_string_env=NOPE")
    monkeypatch.setenv(LIVE_ENV, CONNECTION)
    with pytest.raises(BrokerConfigError, match="does not match the namespace"):
        from_url("servicebus://elsewhere.servicebus.windows.net")
    with pytest.raises(BrokerConfigError, match="unknown servicebus:// option") as caught:
        from_url(f"servicebus://?connection_string={SECRET}")
    assert SECRET not in str(caught.value)
    with pytest.raises(BrokerConfigError, match="sessions must be true or false"):
        from_url("servicebus://?sessions=maybe")


async def test_an_unreachable_namespace_is_unavailable_without_showing_the_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The real SDK clients, against a closed port (azure-core retries for about 5 s)."""
    monkeypatch.setenv(
        LIVE_ENV, f"Endpoint=sb://127.0.0.1:1/;SharedAccessKeyName=app;SharedAccessKey={SECRET}"
    )
    broker = from_url("servicebus://")
    with pytest.raises(BrokerUnavailableError, match="unreachable") as caught:
        await broker.connect()
    assert SECRET not in str(caught.value)
    with pytest.raises(BrokerClosedError):
        await broker.publish("t", event(0))


# --- the adapter over the fake ------------------------------------------------------------------
FAST = ServiceBusSettings(idle_timeout=0.05)


@pytest.fixture
def namespace() -> FakeServiceBusNamespace:
    """An honest fake: a subscription sees only what is sent after it exists."""
    return FakeServiceBusNamespace(f"unit-{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def broker(namespace: FakeServiceBusNamespace) -> AsyncIterator[ServiceBusBroker]:
    async with ServiceBusBroker(namespace.clients(), "servicebus://fake", FAST) as one:
        yield one


def names() -> tuple[str, str]:
    return f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"


async def test_subscribing_creates_a_session_subscription_named_after_the_group(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    async with broker.subscribe(topic, group, SubscribeOptions(max_deliveries=4)):
        sub = namespace.subscription(topic, group)
        assert sub.requires_session and sub.max_delivery_count == 4
        assert sub.forward_dead_lettered_messages_to == dead_letter_topic_for(topic)
        assert list(sub.rules) == ["tether"]  # the $Default rule is replaced
        assert dead_letter_topic_for(topic) in namespace.topics


async def test_ack_completes_the_message(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    async with broker.subscribe(topic, group) as subscription:
        await broker.publish(topic, event(1, key="k"))
        [delivery] = await take(subscription, 1, ack=False)
        [stored] = namespace.subscription(topic, group).messages
        assert stored.lock_token is not None  # peek-locked while the handler works
        assert stored.session_id == "k" and delivery.key == "k"
        await delivery.ack()
        assert namespace.subscription(topic, group).messages == []


async def test_a_subscription_sees_only_what_is_sent_after_it_exists(
    broker: ServiceBusBroker,
) -> None:
    topic, group = names()
    await broker.publish(topic, event(0))  # no subscription yet: Service Bus drops it
    await broker.declare_group(topic, group)  # what deployments do before publishing
    await broker.publish(topic, event(1))
    async with broker.subscribe(topic, group) as subscription:
        [delivery] = await take(subscription, 1)
        await nothing_more(subscription)
    assert delivery.event.data == {"i": 1}


async def test_keyless_nack_schedules_a_copy_for_this_group_only(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    other = f"other-{uuid.uuid4().hex[:8]}"
    await broker.declare_group(topic, other)
    sent = event(1)
    async with broker.subscribe(topic, group) as subscription:
        await broker.publish(topic, sent)
        [first] = await take(subscription, 1, ack=False)
        nacked_at = datetime.now(UTC)
        await first.nack(delay=0.5)
        # the original is completed and a copy waits, visible no earlier than the delay
        [copy] = namespace.subscription(topic, group).messages
        assert copy.visible_at >= nacked_at
        assert (copy.visible_at - nacked_at).total_seconds() >= 0.5
        assert copy.properties[RETRY_GROUP_PROPERTY] == group
        assert copy.properties[DELIVERIES_PROPERTY] == 1
        [again] = await take(subscription, 1)
    assert again.event == sent and again.delivery_count == 2
    # the other group got the original once, never the copy
    [original] = namespace.subscription(topic, other).messages
    assert RETRY_GROUP_PROPERTY not in original.properties


async def test_keyless_nack_without_delay_abandons(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    async with broker.subscribe(topic, group) as subscription:
        await broker.publish(topic, event(1))
        [first] = await take(subscription, 1, ack=False)
        await first.nack()
        [again] = await take(subscription, 1)
    assert first.delivery_count == 1 and again.delivery_count == 2
    assert again.position == first.position  # the same message, counted by Service Bus


async def test_keyed_nack_keeps_the_session_and_the_order(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    sent = [event(i, key="same") for i in range(3)]
    async with (
        ServiceBusBroker(namespace.clients(), "servicebus://fake", FAST) as second,
        broker.subscribe(topic, group) as one,
    ):
        await broker.publish_batch(topic, sent)
        [first] = await take(one, 1, ack=False)
        await first.nack(delay=0.3)
        async with second.subscribe(topic, group) as two:
            await nothing_more(two, 0.5)  # the session stays with the first member
            rest = await take(one, 3)
    assert [d.event.id for d in rest] == [e.id for e in sent]
    assert rest[0].delivery_count == 2


async def test_dead_letter_goes_to_the_native_queue_with_the_reason(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    dead_topic = dead_letter_topic_for(topic)
    async with broker.subscribe(dead_topic, "watchers") as dlq:
        async with broker.subscribe(topic, group) as subscription:
            await broker.publish(topic, event(1, key="k"))
            [delivery] = await take(subscription, 1, ack=False)
            await delivery.dead_letter("bad order")
        [corpse] = await take(dlq, 1)
    # Service Bus forwarded its dead-letter queue (reason and description included)
    assert namespace.subscription(dead_topic, "watchers").messages == []  # acked above
    assert corpse.event.id == delivery.event.id and corpse.key == "k"
    assert corpse.event.extensions["deadletterreason"] == "bad order"
    assert corpse.event.extensions["deadlettertopic"] == topic
    assert corpse.event.extensions["deadletterdeliveries"] == "1"


async def test_dead_letters_stay_native_where_forwarding_is_not_set(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    await broker.create_topic(topic)
    # a subscription made outside Tether: no forwarding, no Tether rule
    await namespace.clients().admin().create_subscription(topic, group, requires_session=True)
    async with broker.subscribe(topic, group) as subscription:
        await broker.publish(topic, event(1, key="k"))
        [delivery] = await take(subscription, 1, ack=False)
        await delivery.dead_letter("no thanks")
    [dead] = namespace.subscription(topic, group).dead_letters
    assert dead.properties["DeadLetterReason"] == "no thanks"
    assert json.loads(dead.properties["DeadLetterErrorDescription"])["topic"] == topic


async def test_undecodable_messages_are_dead_lettered_natively_and_consumption_goes_on(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    async with (
        broker.subscribe(dead_letter_topic_for(topic), "watchers") as dlq,
        broker.subscribe(topic, group) as subscription,
    ):
        foreign = namespace.clients()
        await foreign.open()
        await foreign.sender(topic).send_messages(ServiceBusMessage(b"\x00junk", session_id="x"))
        # Service Bus itself dead-letters a session-less message on a session subscription
        await foreign.sender(topic).send_messages(ServiceBusMessage(b"no session"))
        await broker.publish(topic, event(2))
        [fine] = await take(subscription, 1)
        [junk] = await take(dlq, 1)
        await nothing_more(dlq)
    assert fine.event.data == {"i": 2}
    assert junk.event.type == MALFORMED_EVENT_TYPE and junk.event.data == b"\x00junk"
    assert junk.event.extensions["deadlettertopic"] == topic
    assert "missing required attribute" in junk.event.extensions["deadletterreason"]
    # the session-less one reached the dead-letter topic, whose session subscription refused
    # it too; there it stays in the native dead-letter queue instead of being lost
    [refused] = namespace.subscription(dead_letter_topic_for(topic), "watchers").dead_letters
    assert refused.properties["DeadLetterReason"] == "Session id is null."
    assert refused.dead_letter_source == f"{topic}/Subscriptions/{group}"


async def test_sessions_give_per_key_order_and_one_handler_per_key_across_members(
    namespace: FakeServiceBusNamespace,
) -> None:
    topic, group = names()
    keys = [f"key{k}" for k in range(6)]
    sent = [event(i, key=keys[i % len(keys)]) for i in range(180)]
    seen: dict[str, list[int]] = defaultdict(list)
    by_member: dict[str, set[str]] = defaultdict(set)
    active: set[str] = set()
    overlaps: list[str] = []
    done = asyncio.Event()
    settings = ServiceBusSettings(idle_timeout=0.05, max_sessions=2)
    async with (
        ServiceBusBroker(namespace.clients(), "servicebus://fake", settings) as one,
        ServiceBusBroker(namespace.clients(), "servicebus://fake", settings) as two,
    ):
        first, second = one.subscribe(topic, group), two.subscribe(topic, group)
        await asyncio.gather(first.start(), second.start())

        async def handle(member: str, delivery: Delivery) -> None:
            key = delivery.key or ""
            if key in active:
                overlaps.append(key)
            active.add(key)
            await asyncio.sleep(0.001 * (delivery.event.data["i"] % 3))
            seen[key].append(delivery.event.data["i"])
            by_member[member].add(key)
            active.discard(key)
            await delivery.ack()
            if sum(map(len, seen.values())) == len(sent):
                done.set()

        async def run(member: str, subscription: Subscription) -> None:
            tasks: set[asyncio.Task[None]] = set()
            async for delivery in subscription:
                task = asyncio.create_task(handle(member, delivery))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

        runners = [asyncio.create_task(run("one", first)), asyncio.create_task(run("two", second))]
        await one.publish_batch(topic, sent)
        await asyncio.wait_for(done.wait(), WAIT)
        for runner in runners:
            runner.cancel()
        await asyncio.gather(first.close(), second.close())
    assert overlaps == []
    for key in keys:
        assert seen[key] == sorted(seen[key]) and len(seen[key]) == 30
    assert by_member["one"] and by_member["two"], "one member had every session"


async def test_close_gives_back_what_was_not_settled_and_the_count_survives(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    async with broker.subscribe(topic, group) as subscription:
        await broker.publish_batch(topic, [event(0), event(1)])
        held = await take(subscription, 2, ack=False)
        await subscription.close(drain_timeout=0.1)
    assert all(m.lock_token is None for m in namespace.subscription(topic, group).messages)
    async with broker.subscribe(topic, group) as again:
        redelivered = await take(again, 2)
    assert {d.event.id for d in redelivered} == {d.event.id for d in held}
    assert {d.delivery_count for d in redelivered} == {2}  # Service Bus counted the first try


async def test_keyless_retries_stay_in_memory_without_the_tether_rule(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    await broker.create_topic(topic)
    await namespace.clients().admin().create_subscription(topic, group, requires_session=True)
    async with broker.subscribe(topic, group) as subscription:
        await broker.publish(topic, event(1))
        [first] = await take(subscription, 1, ack=False)
        await first.nack(delay=0.2)
        # no copy was scheduled (it would reach every group): the message stays locked here
        [stored] = namespace.subscription(topic, group).messages
        assert stored.lock_token is not None
        [again] = await take(subscription, 1)
    assert again.event.id == first.event.id and again.delivery_count == 2


async def test_plain_receivers_without_sessions(namespace: FakeServiceBusNamespace) -> None:
    topic, group = names()
    settings = ServiceBusSettings(sessions=False, idle_timeout=0.05)
    sent = [event(i, key=f"k{i % 3}") for i in range(9)]
    async with ServiceBusBroker(namespace.clients(), "servicebus://fake", settings) as broker:
        async with broker.subscribe(topic, group) as subscription:
            assert not namespace.subscription(topic, group).requires_session
            await broker.publish_batch(topic, sent)
            received = await take(subscription, len(sent))
        # the subscription exists with the other setting: a clear error, not a silent mixup
        with_sessions = ServiceBusBroker(namespace.clients(), "servicebus://fake", FAST)
        async with with_sessions:
            with pytest.raises(BrokerConfigError, match="requires_session"):
                await with_sessions.declare_group(topic, group)
    assert [d.event.id for d in received] == [e.id for e in sent]


async def test_names_and_state_are_checked(namespace: FakeServiceBusNamespace) -> None:
    broker = ServiceBusBroker(namespace.clients(), "servicebus://fake", FAST)
    with pytest.raises(BrokerClosedError):
        await broker.publish("t", event(0))
    async with broker:
        with pytest.raises(BrokerConfigError, match="cannot name a Service Bus subscription"):
            broker.subscribe("t", "g" * 51)
        with pytest.raises(BrokerConfigError, match="not a valid Service Bus topic name"):
            await broker.create_topic("bad topic")


async def test_large_batches_are_split_to_fit(
    broker: ServiceBusBroker, namespace: FakeServiceBusNamespace
) -> None:
    topic, group = names()
    big = [CloudEvent(type="big", source="/b", data=bytes(100_000)) for _ in range(6)]
    async with broker.subscribe(topic, group) as subscription:
        await broker.publish_batch(topic, big)  # 600 KB: more than one 256 KB batch
        received = await take(subscription, len(big))
    assert {d.event.id for d in received} == {e.id for e in big}


# --- live: a real namespace ---------------------------------------------------------------------
live = pytest.mark.skipif(
    not os.environ.get(LIVE_ENV),
    reason=f"no Service Bus server or emulator can run on this machine (FIELD-NOTES.md); set "
    f"{LIVE_ENV} to a namespace connection string (Manage rights) to run the live tests",
)


@pytest.fixture
async def live_prefix() -> AsyncIterator[str]:
    """A unique topic prefix; every topic under it is deleted afterwards."""
    prefix = f"tether-live-{uuid.uuid4().hex[:8]}"
    yield prefix
    from azure.servicebus.management import ServiceBusAdministrationClient

    def cleanup() -> None:
        with ServiceBusAdministrationClient.from_connection_string(os.environ[LIVE_ENV]) as admin:
            for topic in list(admin.list_topics()):
                if topic.name.startswith(prefix):
                    admin.delete_topic(topic.name)

    await asyncio.to_thread(cleanup)


@pytest.fixture
async def live_broker() -> AsyncIterator[ServiceBusBroker]:
    async with from_url("servicebus://?idle_timeout=0.5") as broker:
        yield broker


@live
async def test_live_publish_ack_retry_and_dead_letter(
    live_broker: ServiceBusBroker, live_prefix: str
) -> None:
    topic = f"{live_prefix}-a"
    group = "live"
    keyed, keyless = event(1, key="order-1"), event(2)
    async with (
        live_broker.subscribe(dead_letter_topic_for(topic), "watchers") as dlq,
        live_broker.subscribe(topic, group) as subscription,
    ):
        await live_broker.publish_batch(topic, [keyed, keyless])
        first = {d.event.id: d for d in await take(subscription, 2, ack=False)}
        assert first[keyed.id].event == keyed and first[keyed.id].delivery_count == 1
        await first[keyless.id].nack(delay=2.0)  # a scheduled copy
        await first[keyed.id].dead_letter("live test")
        [again] = await take(subscription, 1)
        [corpse] = await take(dlq, 1)
    assert again.event == keyless and again.delivery_count == 2
    assert corpse.event.id == keyed.id
    assert corpse.event.extensions["deadletterreason"] == "live test"
    assert corpse.event.extensions["deadlettertopic"] == topic


@live
async def test_live_per_key_order_with_sessions(
    live_broker: ServiceBusBroker, live_prefix: str
) -> None:
    topic = f"{live_prefix}-b"
    sent = [event(i, key=f"k{i % 3}") for i in range(30)]
    async with live_broker.subscribe(topic, "live") as subscription:
        await live_broker.publish_batch(topic, sent)
        received = await take(subscription, len(sent))
    per_key: dict[str | None, list[int]] = defaultdict(list)
    for delivery in received:
        per_key[delivery.key].append(delivery.event.data["i"])
    assert all(values == sorted(values) for values in per_key.values())
    assert sorted(i for values in per_key.values() for i in values) == list(range(30))
