"""Through the real sidecar (``tether run``'s Sidecar): the app port reaches the block, so a
subscription made over HTTP pushes changes to the app."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp

from tests.configuration.conftest import RecordingApp, RedisBackend
from tests.servers import free_port
from tether.sidecar.server import Sidecar

COMPONENT = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: config
spec:
  type: configuration.redis
  version: v1
  metadata:
  - name: redisHost
    value: {address}
"""


async def test_a_sidecar_pushes_configuration_changes_to_its_app(
    redis_backend: RedisBackend, redis_address: str, app_server: RecordingApp, tmp_path: Path
) -> None:
    (tmp_path / "config.yaml").write_text(COMPONENT.format(address=redis_address))
    port = free_port()
    sidecar = Sidecar("app", port, [tmp_path], app_port=app_server.port)
    await sidecar.start()
    try:
        key = f"k-{uuid.uuid4().hex[:10]}"
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/v1.0/configuration/config/subscribe?key={key}"
            async with session.get(url) as resp:
                assert resp.status == 200
                sub_id = (await resp.json())["id"]
        await redis_backend.set(key, "v", "1")
        await app_server.wait_for(lambda got: any(b["id"] == sub_id for _, b in got))
        path, body = app_server.received[-1]
        assert path == f"/configuration/config/{key}"
        assert body["items"] == {key: {"value": "v", "version": "1"}}
    finally:
        await sidecar.stop()
