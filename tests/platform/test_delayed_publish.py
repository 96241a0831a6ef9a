"""Delayed publish on the sidecar's HTTP API (``metadata.deliverAfter`` / ``deliverAt``):
parsing, Dapr's 400 for bad values with nothing published, and delivery no earlier than
due through a real scheduler (the sidecar test server of test_sidecar_publish)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.platform.test_sidecar_publish import Sidecar, error_of, start
from tether.platform.pubsub.delivery_time import (
    DeliveryTimeError,
    due_from,
    due_time,
    parse_duration,
    parse_time,
)
from tether.platform.pubsub.scheduled import SCHEDULE_TOPIC
from tether.workers.scheduler import Scheduler

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("1m30s", 90), ("2h", 7200), ("500ms", 0.5), ("30", 30), ("0", 0),
     ("1.5h", 5400), ("2.5", 2.5), ("1h2m3s4ms", 3723.004), ("100us", 1e-4), (" 7s ", 7)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "-5s", "-1", "soon", "5 s", "5x", "s", "1h-5m", "1e3",
                                  "5s5", "99999999h", "nan", "inf"])
def test_bad_durations_name_the_value(text: str) -> None:
    with pytest.raises(DeliveryTimeError, match="deliverAfter"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("2026-11-24T21:00:00Z", datetime(2026, 11, 24, 21, tzinfo=UTC)),
     ("2026-11-24t21:00:00.5z", datetime(2026, 11, 24, 21, 0, 0, 500000, tzinfo=UTC)),
     ("2026-11-24T22:00:00+01:00", datetime(2026, 11, 24, 21, tzinfo=UTC)),
     ("2026-11-24T21:00:00.123456789-00:30",
      datetime(2026, 11, 24, 21, 0, 0, 123456, tzinfo=timezone(timedelta(minutes=-30))))],
)
def test_rfc3339_times(text: str, expected: datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["2026-11-24T21:00:00", "2026-11-24", "tomorrow", "",
                                  "2026-02-30T00:00:00Z", "2026-11-24T25:00:00Z",
                                  "1732482000", "2026-11-24T21:00Z"])
def test_bad_times_name_the_value(text: str) -> None:
    with pytest.raises(DeliveryTimeError, match="deliverAt"):
        parse_time(text)


def test_due_time_from_metadata() -> None:
    assert due_time({}, NOW) is None
    assert due_time({"deliverAfter": "90s"}, NOW) == NOW + timedelta(seconds=90)
    past = "2020-01-01T00:00:00Z"
    assert due_time({"deliverAt": past}, NOW) == datetime(2020, 1, 1, tzinfo=UTC)
    with pytest.raises(DeliveryTimeError, match="not both"):
        due_time({"deliverAfter": "1s", "deliverAt": past}, NOW)
    with pytest.raises(DeliveryTimeError, match="3650 days"):
        due_time({"deliverAt": "2999-01-01T00:00:00Z"}, NOW)


def test_sdk_arguments() -> None:
    assert due_from(None, None, NOW) is None
    assert due_from(timedelta(minutes=1), None, NOW) == NOW + timedelta(minutes=1)
    assert due_from(2.5, None, NOW) == NOW + timedelta(seconds=2.5)
    at = datetime(2026, 11, 24, 13, tzinfo=UTC)
    assert due_from(None, at, NOW) == at
    for after, when in [(1, at), (-1, None), (timedelta(seconds=-1), None),
                        (float("nan"), None), (float("inf"), None),
                        (None, datetime(2026, 11, 24, 13))]:
        with pytest.raises(DeliveryTimeError):
            due_from(after, when, NOW)


# --- over HTTP ------------------------------------------------------------------------------


@pytest.fixture
async def sidecar(tmp_path: Path) -> AsyncIterator[Sidecar]:
    running, stop = await start(tmp_path)
    yield running
    await stop()


@pytest.mark.parametrize(
    "params",
    [{"metadata.deliverAfter": "soon"}, {"metadata.deliverAfter": "-5s"},
     {"metadata.deliverAt": "2026-11-24T21:00:00"}, {"metadata.deliverAt": "tomorrow"},
     {"metadata.deliverAfter": "5s", "metadata.deliverAt": "2026-11-24T21:00:00Z"}],
)
async def test_bad_delay_is_400_and_publishes_nothing(
    sidecar: Sidecar, params: dict[str, str]
) -> None:
    response = await sidecar.post("/v1.0/publish/pubsub/orders", "x", params=params)
    assert await error_of(response) == (400, "ERR_PUBSUB_REQUEST_METADATA")
    body = await response.json()
    assert any(value in body["message"] for value in params.values())
    await sidecar.assert_empty("pubsub", "orders")
    await sidecar.assert_empty("pubsub", SCHEDULE_TOPIC)


async def test_bad_delay_in_one_bulk_entry_publishes_nothing(sidecar: Sidecar) -> None:
    entries = [
        {"entryId": "1", "event": "a", "contentType": "text/plain",
         "metadata": {"deliverAfter": "1s"}},
        {"entryId": "2", "event": "b", "contentType": "text/plain",
         "metadata": {"deliverAfter": "later"}},
    ]
    response = await sidecar.post("/v1.0/publish/bulk/pubsub/orders", json.dumps(entries))
    status, code = await error_of(response)
    assert (status, code) == (400, "ERR_PUBSUB_REQUEST_METADATA")
    assert "later" in (await response.json())["message"]
    await sidecar.assert_empty("pubsub", "orders")
    await sidecar.assert_empty("pubsub", SCHEDULE_TOPIC)


@pytest.fixture
async def scheduled_sidecar(sidecar: Sidecar) -> AsyncIterator[Sidecar]:
    """The sidecar with a scheduler on its in-memory component."""
    scheduler = Scheduler(await sidecar.registry.broker(sidecar.memory))
    await scheduler.start()
    yield sidecar
    await scheduler.stop()


async def test_delayed_publish_is_delivered_no_earlier_than_due(
    scheduled_sidecar: Sidecar,
) -> None:
    sidecar = scheduled_sidecar
    broker = await sidecar.registry.broker(sidecar.memory)
    sent_at = datetime.now(UTC)
    response = await sidecar.post(
        f"/v1.0/publish/{sidecar.memory}/later", json.dumps({"n": 1}),
        params={"metadata.deliverAfter": "1500ms", "metadata.partitionKey": "k"},
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 204
    due = sent_at + timedelta(seconds=1.5)
    async with broker.subscribe("later", "g") as subscription:
        async for delivery in subscription:
            arrived = datetime.now(UTC)
            await delivery.ack()
            break
    assert arrived >= due
    event = delivery.event
    assert event.data == {"n": 1} and event.partitionkey == "k"
    assert event.type == "com.dapr.event.sent"
    assert not any(name.startswith("tether") for name in event.extensions)


async def test_deliver_at_in_the_past_is_published_at_once(sidecar: Sidecar) -> None:
    # no scheduler runs here: only an immediate publish can reach the topic
    response = await sidecar.post(
        f"/v1.0/publish/{sidecar.memory}/now", "x",
        params={"metadata.deliverAt": "2020-01-01T00:00:00+02:00"},
    )
    assert response.status == 204
    (event,) = await sidecar.events(sidecar.memory, "now", 1)
    assert event.data == "x"


async def test_bulk_entries_each_with_their_own_delay(scheduled_sidecar: Sidecar) -> None:
    sidecar = scheduled_sidecar
    start_at = datetime.now(UTC)
    entries = [
        {"entryId": "now", "event": "now", "contentType": "text/plain"},
        {"entryId": "soon", "event": "soon", "contentType": "text/plain",
         "metadata": {"deliverAfter": "1s"}},
        {"entryId": "at", "event": "at", "contentType": "text/plain",
         "metadata": {"deliverAt": (start_at + timedelta(seconds=2)).isoformat()}},
    ]
    response = await sidecar.post(f"/v1.0/publish/bulk/{sidecar.memory}/mixed",
                                  json.dumps(entries))
    assert response.status == 204
    broker = await sidecar.registry.broker(sidecar.memory)
    arrived: dict[str, datetime] = {}
    async with broker.subscribe("mixed", "g") as subscription:
        async for delivery in subscription:
            arrived[delivery.event.data] = datetime.now(UTC)
            await delivery.ack()
            if len(arrived) == 3:
                break
    assert arrived["soon"] >= start_at + timedelta(seconds=1)
    assert arrived["at"] >= start_at + timedelta(seconds=2)


async def test_raw_payload_can_be_delayed(scheduled_sidecar: Sidecar) -> None:
    sidecar = scheduled_sidecar
    sent_at = datetime.now(UTC)
    response = await sidecar.post(
        f"/v1.0/publish/{sidecar.memory}/raw", b"\x00opaque\xff",
        params={"metadata.rawPayload": "true", "metadata.deliverAfter": "1s"},
    )
    assert response.status == 204
    broker = await sidecar.registry.broker(sidecar.memory)
    async with broker.subscribe("raw", "g") as subscription:
        async for delivery in subscription:
            arrived = datetime.now(UTC)
            await delivery.ack()
            break
    assert arrived >= sent_at + timedelta(seconds=1)
    assert delivery.event.data == b"\x00opaque\xff"
    assert delivery.event.datacontenttype == "application/octet-stream"
