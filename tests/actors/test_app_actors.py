"""Actors hosted in process by ``tether.App`` (no sidecar, no HTTP), on a real embedded
broker and SQLite actor state store: methods and state, turns that never overlap across two
hosting apps, an error that keeps the turn's state unwritten, reminders and timers."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest

import tether
from tests.sidecars import component, write_components
from tests.workers import until
from tether.platform.errors import ApiError

TURNS: list[tuple[str, float, float]] = []
EVENTS: list[tuple[str, str, Any]] = []


class Account(tether.Actor):
    async def on_activate(self) -> None:
        EVENTS.append(("activate", self.id, None))

    async def on_deactivate(self) -> None:
        EVENTS.append(("deactivate", self.id, None))

    async def deposit(self, amount: int) -> int:
        start = time.monotonic()
        balance = await self.state.get("balance", 0) + amount
        await asyncio.sleep(0.01)  # overlapping turns would lose updates here
        self.state.set("balance", balance)
        TURNS.append((self.id, start, time.monotonic()))
        return balance

    async def balance(self) -> int:
        return int(await self.state.get("balance", 0))

    async def overdraw(self, amount: int) -> None:
        self.state.set("balance", -amount)
        raise ValueError("not allowed")  # the turn's change is not written

    async def remind_me(self) -> None:
        await self.register_reminder("ping", due_time="0.2s", data={"n": 7})

    async def tick_me(self) -> None:
        await self.register_timer("tick", "on_tick", due_time="0s", period="0.2s", data="t")

    async def receive_reminder(self, name: str, data: Any) -> None:
        EVENTS.append(("reminder", self.id, (name, data)))

    async def on_tick(self, data: Any) -> None:
        EVENTS.append(("timer", self.id, data))


def app(resources: Path) -> tether.App:
    bank = tether.App("bank", resources_path=resources)
    bank.actor("Account")(Account)
    return bank


@pytest.fixture
def resources(tmp_path: Path) -> Path:
    return write_components(
        tmp_path / "components",
        component("pubsub", "pubsub.tether.embedded", path=str(tmp_path / "broker.db")),
        component("store", "state.sqlite", connectionString=str(tmp_path / "state.db"),
                  actorStateStore="true"),
    )


async def test_in_process_actors_take_turns_keep_state_and_fire_reminders_and_timers(
    resources: Path,
) -> None:
    TURNS.clear()
    EVENTS.clear()
    first, second = app(resources), app(resources)
    async with first.run(), second.run():
        calls = [(first if i % 2 else second).invoke_actor("Account", f"acc{i % 3}",
                                                           "deposit", 10)
                 for i in range(30)]
        await asyncio.gather(*calls)
        for n in range(3):
            assert await first.invoke_actor("Account", f"acc{n}", "balance") == 100
            turns = sorted((s, e) for actor, s, e in TURNS if actor == f"acc{n}")
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(turns))
        with pytest.raises(ApiError) as caught:
            await first.invoke_actor("Account", "acc0", "overdraw", 5)
        assert caught.value.status == 500
        assert await first.invoke_actor("Account", "acc0", "balance") == 100
        with pytest.raises(ApiError) as missing:
            await first.invoke_actor("Account", "acc0", "_secret")
        assert missing.value.status == 404
        await first.invoke_actor("Account", "r1", "remind_me")
        await until(lambda: ("reminder", "r1", ("ping", {"n": 7})) in EVENTS, "the reminder")
        await first.invoke_actor("Account", "t1", "tick_me")
        await until(lambda: sum(1 for e in EVENTS if e[:2] == ("timer", "t1")) >= 2,
                    "two timer ticks")
    # stopping deactivates what each host had active
    assert {e[1] for e in EVENTS if e[0] == "deactivate"} >= {"acc0", "acc1", "acc2", "t1"}


async def test_topic_events_become_turns_of_in_process_actors_in_order(resources: Path) -> None:
    TURNS.clear()
    bank = app(resources)
    bank.route_to_actor(topic="deposits", actor_type="Account",
                        actor_id="event.data.account", method="deposit_event")

    seen: list[tuple[str, int]] = []

    async def deposit_event(self: Account, event: dict[str, Any]) -> None:
        seen.append((self.id, event["data"]["seq"]))
        balance = await self.state.get("balance", 0)
        self.state.set("balance", balance + event["data"]["amount"])

    Account.deposit_event = deposit_event  # type: ignore[attr-defined]
    async with bank.run():
        for seq in range(10):
            for account in ("e1", "e2"):
                await bank.publish("pubsub", "deposits",
                                   {"account": account, "seq": seq, "amount": 1},
                                   partition_key=account)
        await until(lambda: len(seen) == 20, "twenty turns")
        for account in ("e1", "e2"):
            assert [seq for a, seq in seen if a == account] == list(range(10))
            assert await bank.invoke_actor("Account", account, "balance") == 10
