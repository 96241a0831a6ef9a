"""HttpAppChannel against a real aiohttp app: the request it makes and how answers map."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from tests.workers import AppServer, Call, status
from tether.platform.events import CloudEvent
from tether.workers.app_channel import HttpAppChannel, Outcome, bulk_outcomes, outcome_of

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def an_event() -> CloudEvent:
    return CloudEvent(
        type="order.created",
        source="checkout",
        data={"id": 7},
        extensions={"traceparent": TRACEPARENT, "tracestate": "a=1", "topic": "orders"},
    )


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


async def test_posts_the_structured_event_with_trace_headers(
    app: AppServer, session: aiohttp.ClientSession
) -> None:
    channel = HttpAppChannel(app.port, api_token="secret")
    event = an_event()
    assert await channel.deliver("/orders/new", event) is Outcome.SUCCESS
    [call] = app.calls
    assert call.path == "orders/new"
    assert call.headers["Content-Type"] == "application/cloudevents+json"
    assert call.headers["traceparent"] == TRACEPARENT
    assert call.headers["tracestate"] == "a=1"
    assert call.headers["dapr-api-token"] == "secret"
    assert call.event == event
    assert json.loads(call.body)["data"] == {"id": 7}


@pytest.mark.parametrize(
    ("code", "body", "outcome"),
    [
        (200, b"", Outcome.SUCCESS),
        (204, b"", Outcome.SUCCESS),
        (200, b"not json", Outcome.SUCCESS),
        (200, b"[1, 2]", Outcome.SUCCESS),
        (200, b'{"status": 5}', Outcome.SUCCESS),
        (200, b'{"status": ""}', Outcome.SUCCESS),
        (200, b'{"status": "SUCCESS"}', Outcome.SUCCESS),
        (200, b'{"status": "success"}', Outcome.SUCCESS),
        (200, b'{"status": "RETRY"}', Outcome.RETRY),
        (200, b'{"status": "MAYBE"}', Outcome.RETRY),
        (200, b'{"status": "DROP"}', Outcome.DROP),
        (404, b"", Outcome.DROP),
        (500, b'{"status": "SUCCESS"}', Outcome.RETRY),
        (400, b"", Outcome.RETRY),
        (503, b"", Outcome.RETRY),
    ],
)
async def test_answers_map_to_outcomes(
    app: AppServer, session: aiohttp.ClientSession, code: int, body: bytes, outcome: Outcome
) -> None:
    async def reply(call: Call) -> web.Response:
        return web.Response(status=code, body=body)

    app.reply = reply
    assert outcome_of(code, body) is outcome
    assert await HttpAppChannel(app.port).deliver("x", an_event()) is outcome


async def test_status_json_answers(app: AppServer, session: aiohttp.ClientSession) -> None:
    words = iter(["DROP", "RETRY", "SUCCESS"])

    async def reply(call: Call) -> web.Response:
        return status(next(words))

    app.reply = reply
    channel = HttpAppChannel(app.port)
    got = [await channel.deliver("x", an_event()) for _ in range(3)]
    assert got == [Outcome.DROP, Outcome.RETRY, Outcome.SUCCESS]


async def test_a_timeout_is_a_retry(app: AppServer, session: aiohttp.ClientSession) -> None:
    release = asyncio.Event()

    async def reply(call: Call) -> web.Response:
        await release.wait()
        return web.Response()

    app.reply = reply
    try:
        outcome = await HttpAppChannel(app.port, timeout=0.2).deliver("x", an_event())
    finally:
        release.set()
    assert outcome is Outcome.RETRY
    assert len(app.calls) == 1


async def test_a_refused_connection_is_a_retry(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert await HttpAppChannel(port).deliver("x", an_event()) is Outcome.RETRY


async def test_an_event_that_cannot_be_json_is_dropped(
    app: AppServer, session: aiohttp.ClientSession
) -> None:
    event = CloudEvent(type="t", source="s", data={"x": float("nan")})
    assert await HttpAppChannel(app.port).deliver("x", event) is Outcome.DROP
    assert app.calls == []


@pytest.mark.parametrize(
    ("code", "body", "outcomes"),
    [
        (
            200,
            b'{"statuses": [{"entryId": "a", "status": "SUCCESS"},'
            b' {"entryId": "b", "status": "drop"}, {"entryId": "c", "status": "RETRY"}]}',
            [Outcome.SUCCESS, Outcome.DROP, Outcome.RETRY],
        ),
        (200, b'{"statuses": [{"entryId": "b", "status": "SUCCESS"}]}',
         [Outcome.RETRY, Outcome.SUCCESS, Outcome.RETRY]),
        (200, b"", [Outcome.RETRY] * 3),
        (404, b"", [Outcome.DROP] * 3),
        (500, b"", [Outcome.RETRY] * 3),
    ],
)
def test_bulk_answers_map_to_outcomes(code: int, body: bytes, outcomes: list[Outcome]) -> None:
    assert bulk_outcomes(code, body, ["a", "b", "c"]) == outcomes


async def test_bulk_posts_dapr_s_envelope(app: AppServer, session: aiohttp.ClientSession) -> None:
    async def reply(call: Call) -> web.Response:
        entries = json.loads(call.body)["entries"]
        statuses = [{"entryId": entries[0]["entryId"], "status": "DROP"}]
        return web.json_response({"statuses": statuses})

    app.reply = reply
    events = [an_event(), an_event()]
    bad = CloudEvent(type="t", source="s", data={"x": float("inf")})
    channel = HttpAppChannel(app.port)
    got = await channel.deliver_bulk(
        "bulk", [events[0], bad, events[1]], topic="orders", pubsub_name="pubsub"
    )
    assert got == [Outcome.DROP, Outcome.DROP, Outcome.RETRY]
    [call] = app.calls
    assert call.headers["Content-Type"] == "application/json"
    envelope = json.loads(call.body)
    assert envelope["topic"] == "orders"
    assert envelope["pubsubname"] == "pubsub"
    assert [e["event"]["id"] for e in envelope["entries"]] == [e.id for e in events]
    assert {e["contentType"] for e in envelope["entries"]} == {"application/cloudevents+json"}
