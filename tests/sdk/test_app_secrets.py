"""``tether.App(resources_path=...)`` resolves secretKeyRef values as ``tether run`` does.

A pub/sub component reaches a password-protected redis-server only with the password the app
resolved from a ``secretstores.local.file`` store; an app whose reference cannot be resolved
fails at start with a message naming the component and the secret, never a value.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

import tether
from tests.servers import run_redis
from tether.platform.events import CloudEvent
from tether.platform.secrets import SecretRefError

WAIT = 60.0  # a ceiling for things that should happen, never a speed assertion
PASSWORD = "app-s3cret/Pa55:word"

COMPONENTS = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: local
spec:
  type: secretstores.local.file
  version: v1
  metadata:
    - name: secretsFile
      value: "{secrets}"
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
auth:
  secretStore: local
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - name: redisHost
      value: "{address}"
    - name: redisPassword
      secretKeyRef:
        name: redis-password
        key: redis-password
"""


@pytest.fixture(scope="module")
def protected_redis() -> Iterator[str]:
    """A redis-server of its own that requires PASSWORD; ``host:port``."""
    with run_redis("--requirepass", PASSWORD) as address:
        yield address


def resources(tmp_path: Path, address: str, secrets: dict[str, str]) -> Path:
    folder = tmp_path / "components"
    folder.mkdir()
    secrets_file = tmp_path / "secrets.json"
    secrets_file.write_text(json.dumps(secrets))
    (folder / "components.yaml").write_text(
        COMPONENTS.format(secrets=secrets_file, address=address)
    )
    return folder


async def test_app_publishes_and_receives_with_a_password_from_the_secret_store(
    tmp_path: Path, protected_redis: str
) -> None:
    folder = resources(tmp_path, protected_redis, {"redis-password": PASSWORD})
    app = tether.App("secret-app", resources_path=folder, scheduler=False)
    got: list[CloudEvent] = []

    @app.subscribe(pubsub="pubsub", topic="orders")
    async def on_order(event: CloudEvent) -> None:
        got.append(event)

    async with app.run():
        sent = await app.publish("pubsub", "orders", {"n": 1})
        async with asyncio.timeout(WAIT):
            while not got:  # noqa: ASYNC110 - polls state no event signals
                await asyncio.sleep(0.02)
    assert [e.id for e in got] == [sent.id]
    assert got[0].data == {"n": 1}


async def test_app_with_an_unresolvable_reference_fails_at_start(
    tmp_path: Path, protected_redis: str
) -> None:
    folder = resources(tmp_path, protected_redis, {"other": PASSWORD})
    app = tether.App("secret-app", resources_path=folder, scheduler=False)

    @app.subscribe(pubsub="pubsub", topic="orders")
    async def on_order(event: CloudEvent) -> None:
        pass

    with pytest.raises(SecretRefError) as info:
        await app.start()
    message = str(info.value)
    assert "'pubsub'" in message and "redisPassword" in message
    assert "'redis-password'" in message
    assert PASSWORD not in message
    await app.stop()
