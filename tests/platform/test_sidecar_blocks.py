"""Building blocks plug their routes into the sidecar and are started and closed with it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.sidecar import create_app
from tether.sidecar.api_block import ApiBlock
from tether.sidecar.blocks import build_blocks


class EchoBlock:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def routes(self) -> Sequence[web.RouteDef]:
        return [web.get("/v1.0/echo/{word}", self.echo)]

    async def echo(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"word": request.match_info["word"]})

    async def start(self) -> None:
        self.log.append("start")

    async def close(self) -> None:
        self.log.append("close")


async def test_a_block_serves_its_routes_and_is_started_and_closed() -> None:
    log: list[str] = []
    app = create_app(PubSubRegistry([]), app_id="a", blocks=[EchoBlock(log)])
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        assert log == ["start"]
        resp = await client.get("/v1.0/echo/hi")
        assert resp.status == 200
        assert await resp.json() == {"word": "hi"}
        # the pub/sub routes are still there
        resp = await client.get("/v1.0/healthz")
        assert resp.status == 204
    assert log == ["start", "close"]


def test_build_blocks_skips_factories_without_components_and_passes_errors_on() -> None:
    context = BlockContext("a", [], PubSubRegistry([]))
    log: list[str] = []

    def wants_nothing(ctx: BlockContext) -> ApiBlock | None:
        return None

    def echo(ctx: BlockContext) -> ApiBlock | None:
        return EchoBlock(log)

    blocks = build_blocks(context, [wants_nothing, echo])
    assert len(blocks) == 1

    def broken(ctx: BlockContext) -> ApiBlock | None:
        raise BlockConfigError("state store 'x': metadata redisHost is required")

    with pytest.raises(BlockConfigError, match="redisHost"):
        build_blocks(context, [broken])


def test_components_reach_the_factory() -> None:
    component = Component(name="s", type="state.in-memory", version="v1")
    seen: list[str] = []

    def record(ctx: BlockContext) -> ApiBlock | None:
        seen.extend(c.type for c in ctx.components)
        return None

    build_blocks(BlockContext("a", [component], PubSubRegistry([])), [record])
    assert seen == ["state.in-memory"]
