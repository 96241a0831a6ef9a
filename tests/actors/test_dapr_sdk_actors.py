"""Dapr's official Python SDK against Tether, unchanged, on both sides of an actor call:
``tether run`` hosts the ``SdkCounter`` type of a FastAPI app written with ``dapr.actor``
and ``dapr-ext-fastapi``'s ``DaprActor`` (tests/actors/sdk_app.py), and the test drives it
with the SDK's ``ActorProxy`` through the same sidecar (embedded broker, SQLite actor state
store): methods and their state (the SDK's state transactions), state kept across a
deactivation, reminders and timers registered by the actor, and their removal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dapr.actor import ActorId, ActorProxy
from dapr.clients.exceptions import DaprInternalError
from dapr.conf import settings

from tests.actors.sdk_app import SdkCounterInterface
from tests.actors.test_run_actors import resources, until_hosting
from tests.invocation.test_run_invoke import WAIT
from tests.sidecars import Sidecar, until

APP = Path(__file__).with_name("sdk_app.py")
TYPE = "SdkCounter"


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    root = tmp_path_factory.mktemp("sdk-actors")
    resources(root)
    one = Sidecar(root, APP, "sdk-counters", "one")
    try:
        until_hosting(one)
        # the SDK's client reads its sidecar's address from dapr.conf.settings
        settings.DAPR_HTTP_ENDPOINT = None
        settings.DAPR_RUNTIME_HOST = "127.0.0.1"
        settings.DAPR_HTTP_PORT = one.port
        yield one
    finally:
        log = one.process.stop()
        assert "Traceback" not in log, log


def proxy(actor_id: str, actor_type: str = TYPE) -> Any:
    return ActorProxy.create(actor_type, ActorId(actor_id), SdkCounterInterface)


def fires(sidecar: Sidecar, kind: str, actor_id: str) -> list[dict[str, Any]]:
    return [r for r in sidecar.records("fires.jsonl")
            if r["kind"] == kind and r["id"] == actor_id]


async def test_methods_keep_their_state_between_calls(sidecar: Sidecar) -> None:
    a1, a2 = proxy("a1"), proxy("a2")
    assert [await a1.Incr(1), await a1.Incr(2), await a2.Incr(5)] == [1, 3, 5]
    await a1.SetHistory([{"at": 1}, "two"])
    assert await a1.Get() == {"count": 3, "history": [{"at": 1}, "two"]}
    assert await a2.Get() == {"count": 5, "history": []}
    # the SDK's state transaction landed under Dapr's keys: the sidecar's actor state API
    # reads it back as the JSON the SDK wrote
    state = sidecar.session.get(sidecar.url(f"/v1.0/actors/{TYPE}/a1/state/count"),
                                timeout=WAIT)
    assert (state.status_code, state.json()) == (200, 3)
    # the non-RPC call of the SDK (raw bytes in and out)
    assert await a1.invoke_method("Incr", b"4") == b"7"
    assert fires(sidecar, "activate", "a1")


async def test_an_actor_calls_another_and_removes_state(sidecar: Sidecar) -> None:
    f1 = proxy("f1")
    assert await f1.Forward({"to": "f2", "by": 2}) == 2
    assert await f1.Forward({"to": "f2", "by": 3}) == 5
    assert await proxy("f2").Get() == {"count": 5, "history": []}
    await f1.SetHistory(["x"])
    assert await f1.Forget(3600) is True
    assert await f1.Get() == {"count": 0, "history": []}
    note = sidecar.session.get(sidecar.url(f"/v1.0/actors/{TYPE}/f1/state/note"),
                               timeout=WAIT)
    assert (note.status_code, note.json()) == (200, "short-lived")
    assert await f1.Forget(3600) is False  # nothing left to remove


async def test_errors_reach_the_caller_as_the_sdk_s_errors(sidecar: Sidecar) -> None:
    with pytest.raises(DaprInternalError) as raised:
        await proxy("e1").Fail()
    assert "failed on purpose" in str(raised.value.as_dict())
    with pytest.raises(DaprInternalError):
        await proxy("e1").invoke_method("NoSuchMethod", b"")


async def test_reminders_and_timers_fire_until_unregistered(sidecar: Sidecar) -> None:
    r1 = proxy("r1")
    await r1.Schedule(1)
    until(lambda: len(fires(sidecar, "reminder", "r1")) >= 2, "two reminder fires", sidecar)
    until(lambda: len(fires(sidecar, "timer", "r1")) >= 2, "two timer fires", sidecar)
    reminder = fires(sidecar, "reminder", "r1")[0]
    assert (reminder["name"], reminder["state"], reminder["period"]) == \
        ("ping", "reminder-state", 1.0)
    assert fires(sidecar, "timer", "r1")[0]["state"] == {"from": "timer"}
    kept = sidecar.session.get(sidecar.url(f"/v1.0/actors/{TYPE}/r1/reminders/ping"),
                               timeout=WAIT)
    assert kept.status_code == 200, kept.text
    # the reminder fires as a turn of the actor: its state calls work inside it
    assert await r1.Incr(1) == 1

    await r1.Unschedule()
    gone = sidecar.session.get(sidecar.url(f"/v1.0/actors/{TYPE}/r1/reminders/ping"),
                               timeout=WAIT)
    assert gone.status_code == 404, gone.text
    # Unschedule ran as a turn, so no fire was between its two unregistrations and the
    # answer: none may come after it
    counts = len(fires(sidecar, "reminder", "r1")), len(fires(sidecar, "timer", "r1"))
    time.sleep(3)
    assert (len(fires(sidecar, "reminder", "r1")), len(fires(sidecar, "timer", "r1"))) \
        == counts


async def test_an_idle_actor_is_deactivated_and_comes_back_with_its_state(
        sidecar: Sidecar) -> None:
    s1 = proxy("s1", "SdkSleeper")  # idle timeout 2 s, from the app's entitiesConfig
    assert await s1.Incr(2) == 2
    until(lambda: any(r["name"] == "SdkSleeper" for r in fires(sidecar, "deactivate", "s1")),
          "the idle actor's _on_deactivate", sidecar)
    assert await s1.Incr(1) == 3
    activations = [r for r in fires(sidecar, "activate", "s1") if r["name"] == "SdkSleeper"]
    assert len(activations) == 2
    # the other type's actors of the same app keep the app-wide idle timeout (1 h)
    assert not [r for r in sidecar.records("fires.jsonl")
                if r["kind"] == "deactivate" and r["name"] == TYPE]


async def test_a_reentrant_type_takes_a_call_back_inside_its_turn(sidecar: Sidecar) -> None:
    # SdkReentrant enables reentrancy: m1's Relay calls m2, which calls m1 back with the
    # Dapr-Reentrancy-Id of m1's turn; the call enters the turn instead of waiting for it
    assert await proxy("m1", "SdkReentrant").Relay({"via": "m2", "by": 4}) == 4
    assert await proxy("m1", "SdkReentrant").Relay({"via": "m2", "by": 1}) == 5
    assert await proxy("m1", "SdkReentrant").Get() == {"count": 5, "history": []}
