"""``App.publish(deliver_after=..., deliver_at=...)``: the app's own scheduler forwards the
event when due; handlers never see it earlier; bad arguments publish nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import tether
from tether.brokers.memory import _named_stores
from tether.platform.events import CloudEvent

WAIT = 30.0


@pytest.fixture(params=["memory", "embedded"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        name = f"sdk-{uuid.uuid4().hex[:8]}"
        yield f"memory://{name}"
        _named_stores.pop(name, None)
    else:
        yield f"embedded://{tmp_path / 'broker.db'}?session_timeout=3&heartbeat_interval=0.3"


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - polls state no event signals
            await asyncio.sleep(0.01)


async def test_deliver_after_and_deliver_at(broker_url: str) -> None:
    app = tether.App("reminders", broker=broker_url)
    got: dict[str, tuple[CloudEvent, datetime]] = {}

    @app.subscribe(topic="reminders")
    async def on_reminder(event: CloudEvent) -> None:
        got.setdefault(event.id, (event, datetime.now(UTC)))

    async with app.run():
        start = datetime.now(UTC)
        after = await app.publish("pubsub", "reminders", {"n": 1},
                                  deliver_after=timedelta(seconds=1.2), partition_key="r1")
        seconds = await app.publish("pubsub", "reminders", {"n": 2}, deliver_after=0.8)
        at = await app.publish("pubsub", "reminders", {"n": 3},
                               deliver_at=start + timedelta(seconds=1.5))
        past = await app.publish("pubsub", "reminders", {"n": 4},
                                 deliver_at=start - timedelta(days=1))
        await until(lambda: len(got) == 4)
    assert got[after.id][0] == after
    assert got[after.id][1] >= start + timedelta(seconds=1.2)
    assert got[seconds.id][1] >= start + timedelta(seconds=0.8)
    assert got[at.id][1] >= start + timedelta(seconds=1.5)
    assert got[past.id][0] == past


async def test_bad_arguments_publish_nothing(broker_url: str) -> None:
    app = tether.App("reminders", broker=broker_url)
    got: list[CloudEvent] = []

    @app.subscribe(topic="reminders")
    async def on_reminder(event: CloudEvent) -> None:
        got.append(event)

    async with app.run():
        naive = datetime.now() + timedelta(seconds=1)  # naive: the mistake under test
        for kwargs in ({"deliver_after": -1}, {"deliver_at": naive},
                       {"deliver_after": 1, "deliver_at": datetime.now(UTC)}):
            with pytest.raises(ValueError):
                await app.publish("pubsub", "reminders", "x", **kwargs)  # type: ignore[arg-type]
        marker = await app.publish("pubsub", "reminders", "marker")
        await until(lambda: len(got) >= 1)
        await asyncio.sleep(0.3)
    assert [e.id for e in got] == [marker.id]
