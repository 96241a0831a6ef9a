"""A live sidecar with every block on a real store, served by an event loop in a thread of
its own: schemathesis calls it synchronously (``requests``) from the test's thread."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

from tests.state.sidecar import store_component
from tether.platform.blocks import BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.sidecar import create_app
from tether.sidecar.blocks import build_blocks

#: the state store backends a fuzz run is made on (one run each)
BACKENDS = ("sqlite", "redis", "postgresql", "memory")
STATE, PUBSUB, LOCK, SECRETS, CONFIGURATION = (
    "statestore", "pubsub", "lockstore", "secretstore", "configstore")
#: configuration.redis reads every string key of its database: one of its own
CONFIGURATION_DB = "14"
SECRETS_FILE = {"fuzz-secret": "s3cret", "db": {"user": "app", "password": "pw"}}
T = TypeVar("T")


def components(request: pytest.FixtureRequest, backend: str, tmp: Path) -> list[Component]:
    """Every block's component: the state store on ``backend``, the embedded broker (which
    the workflow API also uses, with the state store), lock on SQLite or Redis, secrets in
    a local file, configuration on Redis."""
    redis = request.getfixturevalue("redis_address")
    secrets = tmp / "secrets.json"
    secrets.write_text(json.dumps(SECRETS_FILE))
    lock = (Component(name=LOCK, type="lock.sqlite",
                      metadata={"connectionString": str(tmp / "lock.db")})
            if backend in ("sqlite", "memory")
            else Component(name=LOCK, type="lock.redis", metadata={"redisHost": redis}))
    return [
        store_component(request, backend, tmp, STATE),
        Component(name=PUBSUB, type="pubsub.tether.embedded",
                  metadata={"path": str(tmp / "broker.db")}),
        lock,
        Component(name=SECRETS, type="secretstores.local.file",
                  metadata={"secretsFile": str(secrets), "nestedSeparator": ":"}),
        Component(name=CONFIGURATION, type="configuration.redis",
                  metadata={"redisHost": redis, "redisDB": CONFIGURATION_DB}),
    ]


class LiveSidecar:
    """``create_app`` with every block, and an app that answers 200 to the configuration
    pushes, both on free loopback ports, until :meth:`stop`."""

    def __init__(self, backend: str, components: list[Component]) -> None:
        self.backend = backend
        self.components = components
        # unique: the redis stores of every test share the session's server
        self.app_id = f"fuzz-{uuid.uuid4().hex[:8]}"
        #: a key no fuzzer will write
        self.canary = f"canary-{uuid.uuid4().hex}"
        #: the requests the fuzzer made
        self.cases = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="sidecar",
                                        daemon=True)
        self._runners: list[web.AppRunner] = []
        self.url = ""

    def start(self) -> LiveSidecar:
        self._thread.start()
        self.url = self.call(self._start())
        return self

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coro`` on the sidecar's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        try:
            self.call(self._stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
            self.loop.close()

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port: int = runner.addresses[0][1]
        return port

    async def _start(self) -> str:
        async def accept(request: web.Request) -> web.StreamResponse:
            return web.Response()

        channel = web.Application()
        channel.router.add_post("/{tail:.*}", accept)
        app_port = await self._serve(channel)
        registry = PubSubRegistry(self.components)
        blocks = build_blocks(BlockContext(self.app_id, self.components, registry,
                                           app_port=app_port))
        app = create_app(registry, app_id=self.app_id, components=self.components,
                         blocks=blocks)
        return f"http://127.0.0.1:{await self._serve(app)}"

    async def _stop(self) -> None:
        for runner in reversed(self._runners):
            await runner.cleanup()
