"""Deliveries under a pub/sub component's inbound resiliency policy, from a real broker
(memory:// and embedded://) to a real aiohttp app: the policy's retries replace the
worker's default backoff, its timeout bounds each call, its breaker holds deliveries."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiohttp import web

from tests.workers import AppServer, Call, status
from tests.workers.test_delivery import (
    APP_ID,
    event,
    ids,
    replies,
    subscription,
    take_dead_letters,
)
from tether.brokers import Broker
from tether.platform.components import load_resources
from tether.platform.resiliency import Resiliency
from tether.platform.resiliency.breaker import CLOSED
from tether.workers.app_channel import HttpAppChannel
from tether.workers.delivery import DeliveryWorker

RESILIENCY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: inbound
spec:
  policies:
    timeouts:
      short: 200ms
    retries:
      three:
        policy: constant
        duration: 10ms
        maxRetries: {retries}
    circuitBreakers:
      cb:
        timeout: 300ms
        trip: consecutiveFailures >= 2
  targets:
    components:
      pubsub:
        inbound:
{policies}
"""


def inbound(tmp_path: Path, policies: dict[str, str], retries: int = 2) -> Resiliency:
    lines = "\n".join(f"          {k}: {v}" for k, v in policies.items())
    (tmp_path / "resiliency.yaml").write_text(RESILIENCY.format(retries=retries, policies=lines))
    return Resiliency.load(load_resources(tmp_path, APP_ID).others, APP_ID)


def worker(broker: Broker, spec: object, app: AppServer, res: Resiliency) -> DeliveryWorker:
    return DeliveryWorker(broker, spec, APP_ID, HttpAppChannel(app.port),  # type: ignore[arg-type]
                          inbound=res.component_inbound("pubsub", "pubsub"))


async def test_max_retries_then_the_dead_letter_topic(
    broker: Broker, app: AppServer, tmp_path: Path
) -> None:
    res = inbound(tmp_path, {"retry": "three"}, retries=2)
    app.reply = replies(*[lambda: web.Response(status=500)] * 10)
    spec = subscription(dead_letter_topic="dlq-inbound")
    failing = event(1)
    async with worker(broker, spec, app, res) as running:
        assert running.max_deliveries == 3
        await broker.publish(spec.topic, failing)
        [dead] = await take_dead_letters(broker, "dlq-inbound", 1)
        await asyncio.sleep(0.1)  # room for an unwanted fourth call to show up
    assert dead.event.id == failing.id
    assert ids(app.calls) == [failing.id] * 3


async def test_no_retries_sends_a_failure_to_the_dead_letter_topic_at_once(
    broker: Broker, app: AppServer, tmp_path: Path
) -> None:
    res = inbound(tmp_path, {"retry": "three"}, retries=0)
    app.reply = replies(lambda: status("RETRY"))
    spec = subscription(dead_letter_topic="dlq-at-once")
    failing = event(2)
    async with worker(broker, spec, app, res):
        await broker.publish(spec.topic, failing)
        [dead] = await take_dead_letters(broker, "dlq-at-once", 1)
    assert dead.event.id == failing.id
    assert ids(app.calls) == [failing.id]


async def test_a_timeout_retries_a_slow_answer(
    broker: Broker, app: AppServer, tmp_path: Path
) -> None:
    res = inbound(tmp_path, {"timeout": "short", "retry": "three"})
    hang = asyncio.Event()

    async def reply(call: Call) -> web.StreamResponse:
        if len(app.calls) == 1:
            await hang.wait()  # never answers in time
        return web.Response()

    app.reply = reply
    spec = subscription()
    slow = event(3)
    async with worker(broker, spec, app, res):
        await broker.publish(spec.topic, slow)
        await app.wait_calls(2)
        hang.set()
        await asyncio.sleep(0.1)
    assert ids(app.calls) == [slow.id] * 2


async def test_an_open_breaker_holds_deliveries_without_using_attempts(
    broker: Broker, app: AppServer, tmp_path: Path
) -> None:
    # two failures trip the breaker; a third attempt is all the retry policy has left, and
    # it goes through once the breaker half-opens: the refusals while open cost nothing
    res = inbound(tmp_path, {"retry": "three", "circuitBreaker": "cb"}, retries=2)
    app.reply = replies(lambda: web.Response(status=500), lambda: web.Response(status=500))
    spec = subscription(dead_letter_topic="dlq-breaker")
    e = event(4)
    async with worker(broker, spec, app, res) as running:
        await broker.publish(spec.topic, e)
        await app.wait_calls(3)
        await asyncio.sleep(0.1)
        breaker = running.inbound.breaker if running.inbound else None
        assert breaker is not None and breaker.state == CLOSED
    assert ids(app.calls) == [e.id] * 3
