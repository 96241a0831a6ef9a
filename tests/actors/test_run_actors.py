"""Actors between real processes: ``tether run`` hosting the ``Counter`` type of a plain
aiohttp app (tests/actors/actor_app.py) on the embedded broker with a SQLite actor state
store: method calls and state, turns that never overlap across two replicas, reminders
(durable, on the scheduler) and timers, idle deactivation, and a host SIGKILLed."""

from __future__ import annotations

import concurrent.futures
import itertools
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.invocation.test_run_invoke import WAIT
from tests.sidecars import Sidecar, component, until, write_components

APP = Path(__file__).with_name("actor_app.py")
APP_ID = "counters"


#: events of this topic are delivered to Counter actors, the actor id from the event
USER_EVENTS = {
    "apiVersion": "dapr.io/v2alpha1", "kind": "Subscription",
    "metadata": {"name": "user-events-to-counters"},
    "spec": {"pubsubname": "pubsub", "topic": "user-events", "routes": {"default": "incr"},
             "metadata": {"actorType": "Counter", "actorIdExpression": "event.data.user"}},
}


def resources(root: Path, pubsub: dict[str, Any] | None = None) -> None:
    write_components(
        root / "components",
        pubsub or component("pubsub", "pubsub.tether.embedded", path=str(root / "broker.db")),
        component("actorstore", "state.sqlite", connectionString=str(root / "state.db"),
                  actorStateStore="true"),
        USER_EVENTS,
    )


def host(root: Path, name: str) -> Sidecar:
    return Sidecar(root, APP, APP_ID, name)


def until_hosting(sidecar: Sidecar) -> None:
    """Up, and hosting the actor type (it asked the app for its config and subscribed)."""
    sidecar.until_up()
    until(lambda: bool(sidecar.session.get(sidecar.url("/v1.0/metadata")).json()
                       .get("actors")), "the actor type to be hosted", sidecar)


def call(sidecar: Sidecar, actor_id: str, method: str, **kwargs: Any) -> Any:
    answer = sidecar.session.put(sidecar.url(f"/v1.0/actors/Counter/{actor_id}/method/{method}"),
                                 timeout=WAIT, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


def records(*hosts: Sidecar, kind: str = "method") -> list[dict[str, Any]]:
    return [r for h in hosts for r in h.records("calls.jsonl") if r["kind"] == kind]


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    root = tmp_path_factory.mktemp("actors-one")
    resources(root)
    sidecar = host(root, "one")
    try:
        until_hosting(sidecar)
        yield sidecar
    finally:
        log = sidecar.process.stop()
        assert "Traceback" not in log, log


def test_method_calls_keep_state_in_the_actor_state_store(one: Sidecar) -> None:
    assert [call(one, "a1", "incr") for _ in range(3)] == [1, 2, 3]
    assert call(one, "a2", "incr") == 1
    state = one.session.get(one.url("/v1.0/actors/Counter/a1/state/count"), timeout=WAIT)
    assert (state.status_code, state.json()) == (200, 3)
    missing = one.session.get(one.url("/v1.0/actors/Counter/a1/state/nope"), timeout=WAIT)
    assert missing.status_code == 204
    meta = one.session.get(one.url("/v1.0/metadata"), timeout=WAIT).json()
    assert meta["actors"][0]["type"] == "Counter" and meta["actors"][0]["count"] >= 2


def test_the_app_s_answer_comes_back_unchanged(one: Sidecar) -> None:
    answer = one.session.put(one.url("/v1.0/actors/Counter/a3/method/boom"), timeout=WAIT)
    assert (answer.status_code, answer.json()) == (500, {"error": "boom"})


def test_a_type_nobody_hosts_answers_dapr_s_error(one: Sidecar) -> None:
    answer = one.session.put(one.url("/v1.0/actors/Nobody/x/method/m"), timeout=WAIT,
                             headers={"tether-invoke-timeout": "2s"})
    assert answer.status_code in (500, 504), answer.text
    assert answer.json()["errorCode"] == "ERR_ACTOR_INVOKE_METHOD"


def test_reminders_fire_durably_and_stop_when_deleted(one: Sidecar) -> None:
    url = one.url("/v1.0/actors/Counter/r1/reminders/ping")
    created = one.session.post(url, json={"dueTime": "0.5s", "period": "R3/PT0.5S",
                                          "data": {"n": 1}}, timeout=WAIT)
    assert created.status_code == 204, created.text
    got = one.session.get(url, timeout=WAIT).json()
    assert got["period"] == "R3/PT0.5S" and got["data"] == {"n": 1}
    until(lambda: len([r for r in records(one, kind="remind") if r["id"] == "r1"]) >= 3,
          "three reminder fires", one)
    fires = [r for r in records(one, kind="remind") if r["id"] == "r1"]
    assert fires[0]["body"]["data"] == {"n": 1} and fires[0]["name"] == "ping"
    until(lambda: one.session.get(url, timeout=WAIT).status_code == 404,
          "the spent reminder to be gone", one)
    # a reminder deleted before it is due never fires
    late = one.url("/v1.0/actors/Counter/r2/reminders/later")
    assert one.session.post(late, json={"dueTime": "2s"}, timeout=WAIT).status_code == 204
    assert one.session.delete(late, timeout=WAIT).status_code == 204
    call(one, "r2", "incr")
    time.sleep(3)
    assert not [r for r in records(one, kind="remind") if r["id"] == "r2"]


def test_timers_fire_while_active_and_an_idle_actor_is_deactivated(one: Sidecar) -> None:
    call(one, "t1", "incr")
    url = one.url("/v1.0/actors/Counter/t1/timers/tick")
    created = one.session.post(url, json={"dueTime": "0s", "period": "0.3s",
                                          "callback": "onTick", "data": "x"}, timeout=WAIT)
    assert created.status_code == 204, created.text
    until(lambda: len([r for r in records(one, kind="timer") if r["id"] == "t1"]) >= 2,
          "two timer fires", one)
    assert one.session.delete(url, timeout=WAIT).status_code == 204
    # no more calls: after its idle timeout (3 s) the actor is deactivated
    until(lambda: any(r["id"] == "t1" for r in records(one, kind="deactivate")),
          "the idle actor's deactivation", one)


@pytest.mark.parametrize("backend", ["embedded", "redis", "kafka"])
def test_turns_of_one_actor_never_overlap_across_two_hosts(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest,
) -> None:
    pubsub = None
    if backend == "redis":
        pubsub = component("pubsub", "pubsub.redis",
                           redisHost=request.getfixturevalue("redis_address"))
    elif backend == "kafka":
        pubsub = component("pubsub", "pubsub.kafka",
                           brokers=request.getfixturevalue("kafka_address"))
    resources(tmp_path, pubsub)
    hosts = [host(tmp_path, "h1"), host(tmp_path, "h2")]
    try:
        for h in hosts:
            until_hosting(h)
        ids = [f"c{i}" for i in range(6)]
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda n: call(hosts[n % 2], ids[n % len(ids)], "incr"), range(60)))
        for actor_id in ids:
            turns = sorted((r["start"], r["end"]) for r in records(*hosts)
                           if r["id"] == actor_id and r["name"] == "incr")
            assert len(turns) == 10
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(turns)), turns
            assert call(hosts[0], actor_id, "get") == 10  # no lost update
        # a reminder of c0 that keeps firing every 0.5 s
        reminder = hosts[0].session.post(
            hosts[0].url("/v1.0/actors/Counter/c0/reminders/beat"),
            json={"dueTime": "0s", "period": "0.5s"}, timeout=WAIT)
        assert reminder.status_code == 204, reminder.text
        until(lambda: any(r["id"] == "c0" for r in records(*hosts, kind="remind")),
              "the first beat", *hosts)
        # kill the host of c0; the survivor takes over its partition, its state and its
        # reminder
        owner_pid = next(r["pid"] for r in records(*hosts) if r["id"] == "c0")
        killed = next(h for h in hosts if any(r["pid"] == owner_pid for r in records(h)))
        survivor = next(h for h in hosts if h is not killed)
        os.kill(killed.process.proc.pid, signal.SIGKILL)
        killed.process.proc.wait()
        assert call(survivor, "c0", "incr") == 11
        beats = len([r for r in records(survivor, kind="remind") if r["id"] == "c0"])
        until(lambda: len([r for r in records(survivor, kind="remind")
                           if r["id"] == "c0"]) >= beats + 2,
              "the reminder firing on the survivor", survivor)
    finally:
        for h in hosts:
            h.process.stop()


def test_tether_client_calls_actors_their_state_and_reminders(one: Sidecar) -> None:
    import tether
    from tether.sdk.client import InvokeMethodError

    with tether.Client(one.url("")) as client:
        assert client.invoke_actor("Counter", "k1", "incr").json() == 1
        assert client.get_actor_state("Counter", "k1", "count") == 1
        client.save_actor_state("Counter", "k1", {"count": 41})
        assert client.invoke_actor("Counter", "k1", "incr").json() == 42
        client.save_actor_state("Counter", "k1", deletes=["count"])
        assert client.get_actor_state("Counter", "k1", "count") is None
        with pytest.raises(InvokeMethodError) as caught:
            client.invoke_actor("Counter", "k1", "boom")
        assert caught.value.status == 500
        client.register_actor_reminder("Counter", "k1", "once", due_time="0.2s")
        until(lambda: any(r["id"] == "k1" for r in records(one, kind="remind")),
              "the reminder set through the client", one)


def test_pubsub_events_become_turns_of_the_actor_they_name_in_order(one: Sidecar) -> None:
    import json

    for seq in range(10):
        for user in ("p1", "p2"):
            answer = one.session.post(
                one.url(f"/v1.0/publish/pubsub/user-events?metadata.partitionKey={user}"),
                json={"user": user, "seq": seq}, timeout=WAIT)
            assert answer.status_code == 204, answer.text
    until(lambda: all(call(one, user, "get") == 10 for user in ("p1", "p2")),
          "ten turns of each actor", one)
    for user in ("p1", "p2"):
        turns = sorted((r["start"], json.loads(r["body"])["data"]["seq"])
                       for r in records(one) if r["id"] == user and r["name"] == "incr")
        assert [seq for _, seq in turns] == list(range(10))  # the publish order
