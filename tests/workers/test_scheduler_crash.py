"""Durability of delayed publish: a scheduler process holding scheduled events is SIGKILLed,
another one starts, and every event is still delivered, none before it was due."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.brokers import conftest as brokers_conftest
from tests.brokers.harness import Harness
from tether.brokers import Broker
from tether.platform.events import CloudEvent
from tether.platform.pubsub.scheduled import publish_at

for _name in ("embedded", "kafka", "redis"):
    globals()[f"{_name}_harness"] = getattr(brokers_conftest, f"{_name}_harness")

ROOT = Path(__file__).resolve().parents[2]
COUNT = 40


@pytest.fixture(params=["embedded", "redis", "kafka"])
def harness(request: pytest.FixtureRequest) -> Harness:
    value: Harness = request.getfixturevalue(f"{request.param}_harness")
    return value


def start_scheduler(url: str, schedule: tuple[str, str], status: Path
                    ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.workers.scheduler_process", url, *schedule, str(status)],
        cwd=ROOT, env=env,
    )


def read_status(status: Path) -> tuple[int, int]:
    try:
        held, forwarded = status.read_text().split()
    except (FileNotFoundError, ValueError):
        return 0, 0
    return int(held), int(forwarded)


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 90) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_killed_scheduler_loses_no_scheduled_event(
    harness: Harness, tmp_path: Path
) -> None:
    topic, group = harness.topic(), harness.group()
    # this test's own schedule topic and group (the Kafka server is shared by the session)
    schedule = (harness.topic("sched"), harness.group("sched"))
    url = harness.url()
    victim_status, survivor_status = tmp_path / "victim", tmp_path / "survivor"
    arrived: dict[str, tuple[CloudEvent, datetime]] = {}
    procs: list[subprocess.Popen[bytes]] = []
    async with harness.broker() as broker:
        await broker.create_topic(topic)
        consumer = asyncio.create_task(consume(broker, topic, group, arrived))
        try:
            procs.append(start_scheduler(url, schedule, victim_status))
            await wait_until(victim_status.exists, "the victim to start")
            # far enough ahead that the victim holds them all before any is due
            now = datetime.now(UTC)
            sent = [CloudEvent(type="t.delayed", source="/crash", data={"i": i},
                               extensions={"partitionkey": f"k{i % 5}"}) for i in range(COUNT)]
            due = [now + timedelta(seconds=15 + i * 0.1) for i in range(COUNT)]
            await publish_at(broker, topic, sent, due, schedule_topic=schedule[0])
            await wait_until(lambda: read_status(victim_status)[0] >= COUNT,
                             "the victim to hold every scheduled event")
            _, forwarded = read_status(victim_status)
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(10)
            assert forwarded == 0 and not arrived, "the victim forwarded before it was killed"
            procs.append(start_scheduler(url, schedule, survivor_status))
            await wait_until(lambda: len(arrived) >= COUNT, "every event delivered", 120)
        finally:
            consumer.cancel()
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(15)
    for original, when in zip(sent, due, strict=True):
        delivered, at = arrived[original.id]
        assert delivered == original
        assert at >= when


async def consume(broker: Broker, topic: str, group: str,
                  arrived: dict[str, tuple[CloudEvent, datetime]]) -> None:
    async with broker.subscribe(topic, group) as subscription:
        async for delivery in subscription:
            arrived.setdefault(delivery.event.id, (delivery.event, datetime.now(UTC)))
            await delivery.ack()
