"""Publish under the pub/sub component's outbound policy, and a bad Resiliency file
stopping the sidecar at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tether.brokers import BrokerError
from tether.cli.run import free_port
from tether.platform.components import load_resources
from tether.platform.errors import ApiError
from tether.platform.pubsub import Publisher, PubSubRegistry
from tether.platform.resiliency import Resiliency
from tether.sidecar.server import Sidecar, SidecarError

APP = "shop"
FILES = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: pubsub}
spec: {type: pubsub.in-memory, version: v1}
---
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: publish}
spec:
  policies:
    retries:
      twice: {policy: constant, duration: 1ms, maxRetries: 2}
  targets:
    components:
      pubsub:
        outbound: {retry: twice}
"""


async def test_a_failing_publish_is_retried_under_the_outbound_policy(tmp_path: Path) -> None:
    (tmp_path / "resources.yaml").write_text(FILES)
    resources = load_resources(tmp_path, APP)
    registry = PubSubRegistry(resources.components_for(APP))
    try:
        broker = await registry.broker("pubsub")
        real = broker.publish
        failures = 0

        async def flaky(topic: str, event: Any) -> None:
            nonlocal failures
            if failures < 2:
                failures += 1
                raise BrokerError("broker away")
            await real(topic, event)

        broker.publish = flaky  # type: ignore[method-assign]
        guarded = Publisher(registry, APP, Resiliency.load(resources.others, APP))
        await guarded.publish(guarded.resolve("pubsub", "orders"), b"hi", None, {}, {})
        assert failures == 2
        # without a policy the first failure is the answer, as before
        failures = 0
        plain = Publisher(registry, APP)
        with pytest.raises(ApiError) as caught:
            await plain.publish(plain.resolve("pubsub", "orders"), b"hi", None, {}, {})
        assert caught.value.status == 500 and failures == 1
    finally:
        await registry.close()


async def test_a_bad_resiliency_file_stops_the_sidecar(tmp_path: Path) -> None:
    (tmp_path / "resources.yaml").write_text(FILES.replace("maxRetries: 2", "maxRetries: two"))
    sidecar = Sidecar(APP, free_port(), [tmp_path])
    with pytest.raises(SidecarError) as caught:
        await sidecar.start()
    message = str(caught.value)
    assert "resources.yaml" in message
    assert "spec.policies.retries.twice.maxRetries must be an integer" in message
