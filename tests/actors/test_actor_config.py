"""What the sidecar reads from ``GET /dapr/config`` as Dapr's Python SDK writes it: its
durations (``0h0m3s0ms0μs``), per-type ``entitiesConfig`` and ``reentrancy``."""

from __future__ import annotations

import json
from datetime import timedelta

from dapr.actor.runtime.config import (
    ActorReentrancyConfig,
    ActorRuntimeConfig,
    ActorTypeConfig,
)
from dapr.serializers import DefaultJSONSerializer

from tether.workers.actors import MAX_STACK_DEPTH, ActorConfig


def sdk_config(config: ActorRuntimeConfig, *types: str) -> ActorConfig:
    config.update_entities(list(types))
    return ActorConfig.parse(json.loads(DefaultJSONSerializer().serialize(config)))


def test_the_sdk_s_durations_and_per_type_settings() -> None:
    parsed = sdk_config(ActorRuntimeConfig(
        actor_idle_timeout=timedelta(minutes=5), actor_scan_interval=timedelta(seconds=2),
        # whole seconds: the SDK rounds the seconds of 1.5 s to 2 and adds 500ms (2.5 s)
        drain_ongoing_call_timeout=timedelta(seconds=3), drain_rebalanced_actors=False,
        actor_type_configs=[ActorTypeConfig("B", actor_idle_timeout=timedelta(seconds=7))],
    ), "A")
    assert sorted(parsed.entities) == ["A", "B"]
    assert (parsed.idle_timeout, parsed.scan_interval, parsed.drain_timeout) == (300, 2, 3)
    assert parsed.drain_rebalanced is False
    assert parsed.idle_by_type == {"B": 7}
    assert parsed.reentrancy == {}


def test_reentrancy_for_all_types_or_per_type() -> None:
    everyone = sdk_config(ActorRuntimeConfig(
        reentrancy=ActorReentrancyConfig(enabled=True),
        actor_type_configs=[ActorTypeConfig("Off", reentrancy=ActorReentrancyConfig(False))],
    ), "A", "B")
    assert everyone.reentrancy == {"A": MAX_STACK_DEPTH, "B": MAX_STACK_DEPTH}
    one = sdk_config(ActorRuntimeConfig(actor_type_configs=[
        ActorTypeConfig("R", reentrancy=ActorReentrancyConfig(enabled=True, maxStackDepth=4)),
    ]), "A")
    assert one.reentrancy == {"R": 4}
