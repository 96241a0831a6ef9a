"""Programmatic subscriptions: parsing the /dapr/subscribe list and fetching it from an app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web

from tests.servers import free_port
from tether.platform.components import (
    BulkSubscribe,
    ProgrammaticSubscriptionError,
    ResourceError,
    RouteRule,
    parse_programmatic,
)
from tether.workers.app_channel import fetch_programmatic_subscriptions

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def test_route_form() -> None:
    [sub] = parse_programmatic(
        [{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}], "checkout"
    )
    assert (sub.pubsub_name, sub.topic) == ("pubsub", "orders")
    assert sub.rules == ()
    assert sub.default_path == "/orders"
    assert sub.dead_letter_topic is None
    assert sub.bulk == BulkSubscribe()
    assert sub.visible_to("checkout") and not sub.visible_to("billing")


def test_routes_form_with_all_fields() -> None:
    [sub] = parse_programmatic(
        [
            {
                "pubsubname": "pubsub",
                "topic": "orders",
                "routes": {
                    "rules": [
                        {"match": 'event.type == "order.v2"', "path": "/v2"},
                        {"path": "/any"},
                    ],
                    "default": "/orders",
                },
                "deadLetterTopic": "poison",
                "metadata": {"rawPayload": "true"},
                "bulkSubscribe": {
                    "enabled": True,
                    "maxMessagesCount": 10,
                    "maxAwaitDurationMs": 40,
                },
            }
        ],
        "checkout",
    )
    assert sub.rules == (RouteRule('event.type == "order.v2"', "/v2"), RouteRule("", "/any"))
    assert sub.default_path == "/orders"
    assert sub.dead_letter_topic == "poison"
    assert sub.metadata == {"rawPayload": "true"}
    assert sub.bulk == BulkSubscribe(True, 10, 40)
    assert sub.route_paths() == ("/v2", "/any", "/orders")


def test_sdk_shape_route_plus_rules_and_go_style_key_case() -> None:
    # the Python SDK sends route, an empty metadata map and no deadLetterTopic; daprd (Go
    # encoding/json) matches field names case-insensitively
    subs = parse_programmatic(
        [
            {"pubsubname": "p", "topic": "a", "route": "/a", "metadata": {}},
            {
                "PubsubName": "p",
                "Topic": "b",
                "route": "/b-fallback",
                "Routes": {"Rules": [{"Match": "true", "Path": "/b"}]},
                "deadLetterTopic": "",
            },
            {"pubsubname": "p", "topic": "c", "route": "/ignored", "routes": {"default": "/c"}},
        ],
        None,
    )
    assert [s.topic for s in subs] == ["a", "b", "c"]
    assert subs[1].rules == (RouteRule("true", "/b"),)
    assert subs[1].default_path == "/b-fallback"
    assert subs[1].dead_letter_topic is None
    assert subs[2].default_path == "/c"  # routes.default wins over route, as in daprd
    assert all(s.visible_to("anyone") for s in subs)


@pytest.mark.parametrize("payload", [None, []])
def test_null_or_empty_list_is_no_subscriptions(payload: object) -> None:
    assert parse_programmatic(payload, "app") == []


@pytest.mark.parametrize(
    ("payload", "field", "problem"),
    [
        ({"pubsubname": "p"}, None, "must be a JSON list"),
        (["x"], "[0]", "must be an object"),
        ([{"topic": "t", "route": "/r"}], "[0].pubsubname", "is required"),
        (
            [{"pubsubname": "p", "topic": "t", "route": "/r"}, {"pubsubname": "p", "route": "/r"}],
            "[1].topic",
            "is required",
        ),
        ([{"pubsubname": "p", "topic": 5, "route": "/r"}], "[0].topic", "must be a string"),
        ([{"pubsubname": "p", "topic": "t"}], "[0]", "needs route"),
        (
            [{"pubsubname": "p", "topic": "t", "routes": {"rules": [{"match": "x"}]}}],
            "[0].routes.rules[0].path",
            "is required",
        ),
        ([{"pubsubname": "p", "topic": "t", "routes": []}], "[0].routes", "must be a mapping"),
        (
            [{"pubsubname": "p", "topic": "t", "route": "/r", "metadata": {"a": [1]}}],
            "[0].metadata.a",
            "must be a plain value",
        ),
        (
            [
                {
                    "pubsubname": "p",
                    "topic": "t",
                    "route": "/r",
                    "bulkSubscribe": {"maxMessagesCount": 0},
                }
            ],
            "[0].bulkSubscribe.maxMessagesCount",
            "must be at least 1",
        ),
        (
            [
                {"pubsubname": "p", "topic": "t", "route": "/a"},
                {"pubsubname": "p", "topic": "t", "route": "/b"},
            ],
            "[1]",
            "repeats pubsubname",
        ),
    ],
)
def test_errors_name_index_and_field(payload: object, field: str | None, problem: str) -> None:
    with pytest.raises(ProgrammaticSubscriptionError) as caught:
        parse_programmatic(payload, "app", origin="GET http://app/dapr/subscribe")
    error = caught.value
    assert isinstance(error, ResourceError)  # callers catching the loader's error see it too
    assert error.field == field
    assert error.problem.startswith(problem)
    assert error.file == "GET http://app/dapr/subscribe"
    assert str(error).startswith("GET http://app/dapr/subscribe: ")


# --- fetching from a real aiohttp app on a free port ---


@pytest.fixture
async def app_server() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Start an app whose GET /dapr/subscribe runs the given handler; yields its base URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_get("/dapr/subscribe", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def _json(body: Any) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body)

    return handler


def _raw(status: int, text: str = "") -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, text=text)

    return handler


async def test_fetch_parses_the_apps_list_and_sends_the_token(
    app_server: Callable[[Handler], Awaitable[str]],
) -> None:
    tokens: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        tokens.append(request.headers.get("dapr-api-token"))
        return web.json_response(
            [
                {
                    "pubsubname": "pubsub",
                    "topic": "orders",
                    "route": "/orders",
                    "metadata": {"rawPayload": "true"},
                }
            ]
        )

    base = await app_server(handler)
    async with ClientSession() as session:
        subs = await fetch_programmatic_subscriptions(
            session, base + "/", app_id="checkout", api_token="s3cret"
        )
    assert [(s.topic, s.default_path, dict(s.metadata)) for s in subs] == [
        ("orders", "/orders", {"rawPayload": "true"})
    ]
    assert subs[0].scopes == ("checkout",)
    assert tokens == ["s3cret"]


@pytest.mark.parametrize("handler", [_raw(404, "not found"), _raw(200, ""), _json(None)])
async def test_fetch_404_or_empty_reply_means_none(
    app_server: Callable[[Handler], Awaitable[str]], handler: Handler
) -> None:
    base = await app_server(handler)
    async with ClientSession() as session:
        assert await fetch_programmatic_subscriptions(session, base) == []


@pytest.mark.parametrize(
    ("handler", "field", "problem"),
    [
        (_raw(500, "boom"), None, "the app answered HTTP 500"),
        (_raw(200, "<html>hi</html>"), None, "reply is not JSON"),
        (_json({"subscriptions": []}), None, "must be a JSON list"),
        (_json([{"pubsubname": "p", "topic": "t"}]), "[0]", "needs route"),
    ],
)
async def test_fetch_bad_replies_raise_clear_errors(
    app_server: Callable[[Handler], Awaitable[str]],
    handler: Handler,
    field: str | None,
    problem: str,
) -> None:
    base = await app_server(handler)
    async with ClientSession() as session:
        with pytest.raises(ProgrammaticSubscriptionError) as caught:
            await fetch_programmatic_subscriptions(session, base)
    assert caught.value.field == field
    assert caught.value.problem.startswith(problem)
    assert caught.value.file == f"GET {base}/dapr/subscribe"


async def test_fetch_timeout_is_bounded(
    app_server: Callable[[Handler], Awaitable[str]],
) -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response([])

    base = await app_server(hang)
    try:
        async with ClientSession() as session:
            with pytest.raises(ProgrammaticSubscriptionError, match="did not answer within"):
                await fetch_programmatic_subscriptions(session, base, timeout=0.2)
    finally:
        release.set()


async def test_fetch_connection_refused_is_a_clear_error() -> None:
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens here
    async with ClientSession() as session:
        with pytest.raises(ProgrammaticSubscriptionError, match="request failed"):
            await fetch_programmatic_subscriptions(session, base)
