"""Lock components loaded from YAML by ``tether run``'s Sidecar, served over HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path

import aiohttp

from tests.servers import free_port
from tether.sidecar.server import Sidecar

COMPONENTS = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: filelock
spec:
  type: lock.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: {path}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: redislock
spec:
  type: lock.redis
  version: v1
  metadata:
  - name: redisHost
    value: {address}
"""


async def test_two_sidecars_share_a_lock_store_loaded_from_yaml(
    redis_address: str, tmp_path: Path
) -> None:
    resources = tmp_path / "components"
    resources.mkdir()
    (resources / "locks.yaml").write_text(
        COMPONENTS.format(path=tmp_path / "locks.db", address=redis_address)
    )
    # one app id, two sidecars (two replicas): their locks exclude each other
    ports = [free_port(), free_port()]
    job = f"job-{uuid.uuid4()}"
    sidecars = [Sidecar("replicated", port, [resources]) for port in ports]
    for sidecar in sidecars:
        await sidecar.start()
    try:
        async with aiohttp.ClientSession() as session:
            for store in ("filelock", "redislock"):
                answers = []
                for port in ports:
                    async with session.post(
                        f"http://127.0.0.1:{port}/v1.0-alpha1/lock/{store}",
                        json={"resourceId": job, "lockOwner": f"o{port}",
                              "expiryInSeconds": 30},
                    ) as resp:
                        answers.append(await resp.json())
                assert answers == [{"success": True}, {"success": False}]
                async with session.post(
                    f"http://127.0.0.1:{ports[0]}/v1.0-alpha1/unlock/{store}",
                    json={"resourceId": job, "lockOwner": f"o{ports[0]}"},
                ) as resp:
                    assert await resp.json() == {"status": 0}
            async with session.get(f"http://127.0.0.1:{ports[0]}/v1.0/metadata") as resp:
                listed = {(c["name"], c["type"]) for c in (await resp.json())["components"]}
            assert {("filelock", "lock.sqlite"), ("redislock", "lock.redis")} <= listed
    finally:
        for sidecar in sidecars:
            await sidecar.stop()
