"""DeliveryWorker from a real broker (memory:// and embedded://) to a real aiohttp app."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.workers import WAIT, AppServer, Call, status
from tether.brokers import Broker, Delivery, open_broker
from tether.brokers.memory import _named_stores
from tether.platform.components import BulkSubscribe, RouteRule, Subscription
from tether.platform.events import CloudEvent, format_time, utc_now
from tether.workers.app_channel import HttpAppChannel, Outcome
from tether.workers.delivery import DeliveryOptions, DeliveryWorker
from tether.workers.retry import Backoff

APP_ID = "orders-app"
FAST = Backoff(initial=0.01, multiplier=2.0, maximum=0.05)


@pytest.fixture(params=["memory", "embedded"])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    if request.param == "memory":
        name = f"delivery-{uuid.uuid4().hex[:8]}"
        url = f"memory://{name}"
    else:
        name = ""
        url = f"embedded://{tmp_path / 'broker.db'}?session_timeout=3&heartbeat_interval=0.3"
    async with open_broker(url) as opened:
        yield opened
    _named_stores.pop(name, None)


@pytest.fixture
async def app() -> AsyncIterator[AppServer]:
    server = AppServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def subscription(**changes: object) -> Subscription:
    fields: dict[str, object] = {
        "name": "orders-sub",
        "pubsub_name": "pubsub",
        "topic": f"orders-{uuid.uuid4().hex[:6]}",
        "default_path": "/orders",
    }
    fields.update(changes)
    return Subscription(**fields)  # type: ignore[arg-type]


def worker(
    broker: Broker,
    spec: Subscription,
    app: AppServer,
    session: aiohttp.ClientSession,
    **options: object,
) -> DeliveryWorker:
    settings = DeliveryOptions(backoff=FAST, **options)  # type: ignore[arg-type]
    return DeliveryWorker(broker, spec, APP_ID, HttpAppChannel(app.port), settings)


def event(i: int, key: str | None = None, **extensions: str) -> CloudEvent:
    if key is not None:
        extensions["partitionkey"] = key
    return CloudEvent(type="order", source="test", data={"i": i}, extensions=extensions)


def replies(*answers: Callable[[], web.Response]) -> Callable[[Call], object]:
    """A reply function giving ``answers`` in turn, then 200 with no body."""
    queue = list(answers)

    async def reply(call: Call) -> web.Response:
        return queue.pop(0)() if queue else web.Response()

    return reply


async def take_dead_letters(broker: Broker, topic: str, count: int) -> list[Delivery]:
    got: list[Delivery] = []

    async def run() -> None:
        async with broker.subscribe(topic, "dead-letter-reader") as source:
            async for delivery in source:
                got.append(delivery)
                await delivery.ack()
                if len(got) == count:
                    return

    await asyncio.wait_for(run(), WAIT)
    return got


def ids(calls: list[Call]) -> list[str]:
    return [call.event.id for call in calls if call.event is not None]


async def assert_settled(
    broker: Broker, spec: Subscription, app: AppServer, session: aiohttp.ClientSession
) -> None:
    """A fresh worker in the same group gets only a new marker event: everything before it
    was settled (acked or dead-lettered), not left for redelivery."""
    before = len(app.calls)
    marker = event(-1)
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, marker)
        await app.wait_calls(before + 1)
        await asyncio.sleep(0.2)  # room for an unwanted redelivery to show up
    assert ids(app.calls[before:]) == [marker.id]


# --- routing ------------------------------------------------------------------------------
async def test_routes_by_rules_then_default(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    spec = subscription(
        rules=(
            RouteRule('event.type == "order.big"', "/big"),
            RouteRule("int(event.data.i) > 100", "/large"),
        ),
        default_path="/orders",
    )
    big = CloudEvent(type="order.big", source="test", data={"i": 1})
    large, small = event(500), event(1)
    async with worker(broker, spec, app, session):
        for e in (big, large, small):
            await broker.publish(spec.topic, e)
        calls = await app.wait_calls(3)
    paths = {call.event.id: call.path for call in calls if call.event is not None}
    assert paths == {big.id: "big", large.id: "large", small.id: "orders"}


async def test_no_matching_route_acks_and_skips(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    spec = subscription(rules=(RouteRule("int(event.data.i) > 100", "/large"),), default_path=None)
    skipped, routed = event(1), event(500)
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, skipped)
        await broker.publish(spec.topic, routed)
        await app.wait_calls(1)
    assert ids(app.calls) == [routed.id]
    spec_all = subscription(topic=spec.topic, default_path="/orders")
    await assert_settled(broker, spec_all, app, session)


async def test_no_matching_route_goes_to_the_dead_letter_topic_if_set(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    spec = subscription(
        rules=(RouteRule("int(event.data.i) > 100", "/large"),),
        default_path=None,
        dead_letter_topic="dlq-unrouted",
    )
    skipped = event(1)
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, skipped)
        [dead] = await take_dead_letters(broker, "dlq-unrouted", 1)
    assert dead.event.id == skipped.id
    assert "no route" in dead.event.extensions["deadletterreason"]
    assert app.calls == []


async def test_a_failing_match_expression_goes_to_the_dead_letter_topic(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    spec = subscription(
        rules=(RouteRule("event.data.missing == 1", "/never"),), dead_letter_topic="dlq-route"
    )
    bad = event(1)
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, bad)
        [dead] = await take_dead_letters(broker, "dlq-route", 1)
    assert dead.event.id == bad.id
    assert "event.data.missing" in dead.event.extensions["deadletterreason"]
    assert app.calls == []


# --- outcomes -----------------------------------------------------------------------------
async def test_success_acks(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    app.reply = replies(lambda: status("SUCCESS"))
    spec = subscription()
    first = event(1)
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, first)
        await app.wait_calls(1)
    await assert_settled(broker, spec, app, session)
    assert ids(app.calls).count(first.id) == 1


@pytest.mark.parametrize(
    "failure",
    [lambda: status("RETRY"), lambda: web.Response(status=500), lambda: status("BOGUS")],
    ids=["RETRY", "500", "unknown-status"],
)
async def test_failures_are_retried_then_succeed(
    broker: Broker,
    app: AppServer,
    session: aiohttp.ClientSession,
    failure: Callable[[], web.Response],
) -> None:
    app.reply = replies(failure, failure)
    spec = subscription()
    e = event(1)
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, e)
        calls = await app.wait_calls(3)
    assert ids(calls) == [e.id] * 3
    await assert_settled(broker, spec, app, session)
    assert ids(app.calls).count(e.id) == 3


async def test_retry_waits_for_the_backoff(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    app.reply = replies(lambda: status("RETRY"))
    spec = subscription()
    e = event(1)
    loop = asyncio.get_running_loop()
    seen: list[float] = []
    slow = Backoff(initial=0.3, multiplier=1.0, maximum=0.3)
    inner = app.reply

    async def timed(call: Call) -> web.StreamResponse:
        seen.append(loop.time())
        return await inner(call)  # type: ignore[no-any-return, operator]

    app.reply = timed
    async with DeliveryWorker(
        broker, spec, APP_ID, HttpAppChannel(app.port), DeliveryOptions(backoff=slow)
    ):
        await broker.publish(spec.topic, e)
        await app.wait_calls(2)
    # the redelivery came no earlier than the backoff: a lower bound, which the broker's
    # nack(delay) guarantees, not a timing measurement
    assert seen[1] - seen[0] >= 0.3 * 0.9


@pytest.mark.parametrize(
    "drop", [lambda: status("DROP"), lambda: web.Response(status=404)], ids=["DROP", "404"]
)
async def test_drop_goes_to_the_dead_letter_topic(
    broker: Broker,
    app: AppServer,
    session: aiohttp.ClientSession,
    drop: Callable[[], web.Response],
) -> None:
    app.reply = replies(drop)
    spec = subscription(dead_letter_topic="dlq-drop")
    e = event(1)
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, e)
        [dead] = await take_dead_letters(broker, "dlq-drop", 1)
    assert dead.event.id == e.id
    assert dead.event.data == {"i": 1}
    assert "dropped" in dead.event.extensions["deadletterreason"]
    assert ids(app.calls) == [e.id]
    await assert_settled(broker, spec, app, session)


async def test_drop_without_a_dead_letter_topic_acks(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    app.reply = replies(lambda: status("DROP"))
    spec = subscription()
    e = event(1)
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, e)
        await app.wait_calls(1)
    await assert_settled(broker, spec, app, session)
    assert ids(app.calls).count(e.id) == 1


async def test_max_deliveries_dead_letters(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    async def always_fail(call: Call) -> web.Response:
        return web.Response(status=500)

    app.reply = always_fail
    spec = subscription(dead_letter_topic="dlq-max")
    e = event(1)
    async with worker(broker, spec, app, session, max_deliveries=3):
        await broker.publish(spec.topic, e)
        [dead] = await take_dead_letters(broker, "dlq-max", 1)
    assert dead.event.id == e.id
    assert dead.event.extensions["deadletterdeliveries"] == "3"
    assert ids(app.calls) == [e.id] * 3


async def test_expired_events_never_reach_the_app(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    spec = subscription(dead_letter_topic="dlq-expired")
    past = format_time(utc_now() - timedelta(seconds=5))
    future = format_time(utc_now() + timedelta(hours=1))
    stale, fresh = event(1, expiration=past), event(2, expiration=future)
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, stale)
        await broker.publish(spec.topic, fresh)
        [dead] = await take_dead_letters(broker, "dlq-expired", 1)
        await app.wait_calls(1)
    assert dead.event.id == stale.id
    assert "expired" in dead.event.extensions["deadletterreason"]
    assert ids(app.calls) == [fresh.id]


async def test_expired_events_without_a_dead_letter_topic_are_dropped(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    spec = subscription()
    stale = event(1, expiration=format_time(utc_now() - timedelta(seconds=5)))
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, stale)
    await assert_settled(broker, spec, app, session)
    assert stale.id not in ids(app.calls)


# --- raw payload --------------------------------------------------------------------------
async def test_raw_payload_subscription_gets_a_base64_envelope(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    spec = subscription(metadata={"rawPayload": "true"})
    raw = CloudEvent(
        type="t", source="s", data=b"\x00\x01raw", datacontenttype="application/octet-stream"
    )
    async with worker(broker, spec, app, session):
        await broker.publish(spec.topic, raw)
        [call] = await app.wait_calls(1)
    assert call.event is not None
    assert call.event.data == b"\x00\x01raw"
    assert call.event.source == "Dapr"
    assert call.event.extensions["topic"] == spec.topic
    assert call.event.extensions["pubsubname"] == "pubsub"
    assert b'"data_base64"' in call.body


# --- concurrency and shutdown -------------------------------------------------------------
async def test_concurrency_limit_is_respected(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    limit, total = 3, 12
    release = asyncio.Event()
    active = 0
    peak = 0

    async def hold(call: Call) -> web.Response:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await release.wait()
        finally:
            active -= 1
        return web.Response()

    app.reply = hold
    spec = subscription()
    async with worker(broker, spec, app, session, max_concurrency=limit) as running:
        for i in range(total):
            await broker.publish(spec.topic, event(i, key=f"k{i}"))
        await app.wait_calls(limit)
        await asyncio.sleep(0.3)  # room for a fourth request, which must not come
        assert len(app.calls) == limit
        assert running.in_flight == limit
        release.set()
        await app.wait_calls(total)
    assert peak == limit


async def test_per_key_order_holds_under_concurrency(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    async def jitter(call: Call) -> web.Response:
        assert call.event is not None
        await asyncio.sleep(0.001 * (hash(call.event.id) % 5))
        return web.Response()

    app.reply = jitter
    spec = subscription()
    keys, per_key = ("a", "b", "c", "d"), 10
    async with worker(broker, spec, app, session, max_concurrency=8):
        for i in range(per_key):
            for key in keys:
                await broker.publish(spec.topic, event(i, key=key))
        calls = await app.wait_calls(len(keys) * per_key)
    for key in keys:
        seen = [
            c.event.data["i"]
            for c in calls
            if c.event is not None and c.event.partitionkey == key
        ]
        assert seen == list(range(per_key))


async def test_stop_drains_an_in_flight_request(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    release = asyncio.Event()
    answered: list[str] = []

    async def hold(call: Call) -> web.Response:
        await release.wait()
        assert call.event is not None
        answered.append(call.event.id)
        return web.Response()

    app.reply = hold
    spec = subscription()
    e = event(1)
    running = worker(broker, spec, app, session)
    await running.start()
    await broker.publish(spec.topic, e)
    await app.wait_calls(1)
    stopping = asyncio.create_task(running.stop())
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waits for the app's answer
    release.set()
    await asyncio.wait_for(stopping, WAIT)
    assert answered == [e.id]
    app.reply = None
    await assert_settled(broker, spec, app, session)
    assert ids(app.calls).count(e.id) == 1


async def test_channel_errors_are_retried(broker: Broker) -> None:
    class Flaky:
        def __init__(self) -> None:
            self.seen: list[str] = []

        async def deliver(self, path: str, event: CloudEvent) -> Outcome:
            self.seen.append(event.id)
            if len(self.seen) == 1:
                raise RuntimeError("boom")
            return Outcome.SUCCESS

    channel = Flaky()
    spec = subscription()
    e = event(1)
    async with DeliveryWorker(broker, spec, APP_ID, channel, DeliveryOptions(backoff=FAST)):
        await broker.publish(spec.topic, e)
        for _ in range(int(WAIT / 0.05)):
            if len(channel.seen) >= 2:
                break
            await asyncio.sleep(0.05)
    assert channel.seen == [e.id, e.id]


async def test_a_failing_match_expression_without_a_dead_letter_topic_is_retried(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    spec = subscription(rules=(RouteRule("event.data.missing == 1", "/never"),))
    bad = event(1)
    async with worker(broker, spec, app, session, max_deliveries=2):
        await broker.publish(spec.topic, bad)
        # retried until max_deliveries, then the broker's own dead-letter topic
        [dead] = await take_dead_letters(broker, spec.topic + ".deadletter", 1)
    assert dead.event.id == bad.id
    assert dead.event.extensions["deadletterdeliveries"] == "2"
    assert app.calls == []


# --- bulk subscribe -----------------------------------------------------------------------
async def test_bulk_subscribe_delivers_batches_and_settles_each_entry(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    answers = iter(["SUCCESS", "RETRY", "DROP"])

    async def reply(call: Call) -> web.Response:
        entries = json.loads(call.body)["entries"]
        statuses = [{"entryId": e["entryId"], "status": next(answers, "SUCCESS")} for e in entries]
        return web.json_response({"statuses": statuses})

    app.reply = reply
    spec = subscription(
        bulk=BulkSubscribe(enabled=True, max_messages_count=3, max_await_duration_ms=1500),
        dead_letter_topic="dlq-bulk",
    )
    events = [event(i, key=f"k{i}") for i in range(3)]
    await broker.publish_batch(spec.topic, events)
    async with worker(broker, spec, app, session):
        [dead] = await take_dead_letters(broker, "dlq-bulk", 1)
        await app.wait_calls(2)
    first, second = (json.loads(c.body) for c in app.calls[:2])
    got = [e["event"]["id"] for e in first["entries"]]
    assert sorted(got) == sorted(e.id for e in events)
    assert first["topic"] == spec.topic
    # the second entry was retried in a later bulk, the third dead-lettered
    assert [e["event"]["id"] for e in second["entries"]] == [got[1]]
    assert dead.event.id == got[2]
    app.reply = None
    await assert_settled(broker, subscription(topic=spec.topic), app, session)


async def test_max_concurrency_bounds_bulk_requests_not_events(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    release = asyncio.Event()

    async def hold(call: Call) -> web.Response:
        await release.wait()
        return web.Response()

    app.reply = hold
    spec = subscription(
        bulk=BulkSubscribe(enabled=True, max_messages_count=3, max_await_duration_ms=60_000)
    )
    await broker.publish_batch(spec.topic, [event(i) for i in range(9)])
    async with worker(broker, spec, app, session, max_concurrency=2) as running:
        await app.wait_calls(2)
        await asyncio.sleep(0.3)  # room for a third request, which must not come
        assert len(app.calls) == 2
        assert running.in_flight == 6
        release.set()
        calls = await app.wait_calls(3)
    sizes = [len(json.loads(c.body)["entries"]) for c in calls]
    assert sizes == [3, 3, 3]


async def test_bulk_with_keys_sends_a_batch_once_the_rest_wait_behind_its_keys(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    async def success(call: Call) -> web.Response:
        entries = json.loads(call.body)["entries"]
        statuses = [{"entryId": e["entryId"], "status": "SUCCESS"} for e in entries]
        return web.json_response({"statuses": statuses})

    def seen(calls: list[Call]) -> list[tuple[str | None, int]]:
        return [
            (e["event"].get("partitionkey"), e["event"]["data"]["i"])
            for c in calls
            for e in json.loads(c.body)["entries"]
        ]

    async def until_seen(count: int) -> list[Call]:
        while len(seen(app.calls)) < count:
            await app.wait_calls(len(app.calls) + 1)
        return list(app.calls)

    app.reply = success
    # a whole minute to fill a batch of 3: only the stall check sends these in time
    spec = subscription(
        bulk=BulkSubscribe(enabled=True, max_messages_count=3, max_await_duration_ms=60_000)
    )
    keys, per_key = ("a", "b"), 3
    await broker.publish_batch(
        spec.topic, [event(i, key=key) for i in range(per_key) for key in keys]
    )
    async with worker(broker, spec, app, session):
        await asyncio.wait_for(until_seen(4), WAIT)
    # the last events may wait for the minute in an open batch (nothing waits behind them);
    # stop() sends a batch it holds, and a worker with a short wait gets the rest
    quick = BulkSubscribe(enabled=True, max_messages_count=3, max_await_duration_ms=100)
    async with worker(broker, subscription(topic=spec.topic, bulk=quick), app, session):
        calls = await asyncio.wait_for(until_seen(len(keys) * per_key), WAIT)
    for call in calls:
        batch_keys = [key for key, _ in seen([call])]
        assert len(batch_keys) == len(set(batch_keys))  # at most one event of a key
    for key in keys:
        assert [i for k, i in seen(calls) if k == key] == list(range(per_key))
    app.reply = None
    await assert_settled(broker, subscription(topic=spec.topic), app, session)


async def test_bulk_never_has_two_events_of_a_key_in_flight_and_keeps_their_order(
    broker: Broker, app: AppServer, session: aiohttp.ClientSession
) -> None:
    out: dict[str, int] = {}  # key -> requests in flight holding one of its events
    overlaps: list[str] = []
    succeeded: dict[str, list[int]] = {}
    retried: set[str] = set()
    done = asyncio.Event()

    async def reply(call: Call) -> web.Response:
        entries = json.loads(call.body)["entries"]
        keys = [e["event"]["partitionkey"] for e in entries]
        for key in keys:
            if out.get(key):
                overlaps.append(key)
            out[key] = out.get(key, 0) + 1
        await asyncio.sleep(0.01)  # let other batches overlap this one
        statuses = []
        for entry in entries:
            data, event_id = entry["event"]["data"], entry["event"]["id"]
            # every third event fails once: its key must wait for its redelivery
            if data["i"] % 3 == 0 and event_id not in retried:
                retried.add(event_id)
                status_word = "RETRY"
            else:
                succeeded.setdefault(entry["event"]["partitionkey"], []).append(data["i"])
                status_word = "SUCCESS"
            statuses.append({"entryId": entry["entryId"], "status": status_word})
        for key in keys:
            out[key] -= 1
        if sum(len(v) for v in succeeded.values()) == total:
            done.set()
        return web.json_response({"statuses": statuses})

    app.reply = reply
    spec = subscription(
        bulk=BulkSubscribe(enabled=True, max_messages_count=5, max_await_duration_ms=50)
    )
    keys, per_key = ("a", "b", "c", "d", "e", "f"), 8
    total = len(keys) * per_key
    await broker.publish_batch(
        spec.topic, [event(i, key=key) for i in range(per_key) for key in keys]
    )
    async with worker(broker, spec, app, session):
        await asyncio.wait_for(done.wait(), WAIT)
    assert overlaps == []
    for key in keys:
        assert succeeded[key] == list(range(per_key))
    app.reply = None
    await assert_settled(broker, subscription(topic=spec.topic), app, session)
