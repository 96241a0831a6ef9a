"""An actor host written with Dapr's official Python SDK, as Dapr's docs and samples write
one (``dapr.actor`` + ``dapr-ext-fastapi``'s ``DaprActor``, run by uvicorn on APP_PORT). The
SDK finds the sidecar through DAPR_HTTP_PORT, which ``tether run`` sets.

The ``SdkCounter`` type (interface ``SdkCounterInterface``, shared with the test's
``ActorProxy``):

- ``Incr``: adds to ``count`` through ``self._state_manager`` and saves it, answers the count;
- ``Get``: answers ``count`` and ``history``; ``SetHistory``: keeps a list (a second state key);
- ``Forward``: calls ``Incr`` of another actor (``{"to": id, "by": n}``) with the SDK's proxy;
- ``Relay``: calls ``Forward`` of actor ``via``, which calls this actor back (reentrancy);
- ``Forget``: removes ``history`` and writes ``note`` with a TTL; ``Fail`` raises;
- ``Schedule``: registers the reminder ``ping`` and the timer ``tick`` (callback ``on_tick``);
- ``Unschedule``: unregisters both;
- ``receive_reminder`` and ``on_tick`` record each fire in ``fires.jsonl`` (kind, actor id,
  name, state) in the working folder.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from dapr.actor import Actor, ActorId, ActorInterface, ActorProxy, Remindable, actormethod
from dapr.actor.runtime.config import (
    ActorReentrancyConfig,
    ActorRuntimeConfig,
    ActorTypeConfig,
)
from dapr.actor.runtime.runtime import ActorRuntime
from dapr.ext.fastapi import DaprActor
from fastapi import FastAPI


def record(**fields: Any) -> None:
    with Path("fires.jsonl").open("a") as f:
        f.write(json.dumps({**fields, "pid": os.getpid()}) + "\n")


class SdkCounterInterface(ActorInterface):
    @actormethod(name="Incr")
    async def incr(self, by: int) -> int: ...

    @actormethod(name="Get")
    async def get(self) -> dict[str, Any]: ...

    @actormethod(name="SetHistory")
    async def set_history(self, history: list[Any]) -> None: ...

    @actormethod(name="Forward")
    async def forward(self, call: dict[str, Any]) -> int: ...

    @actormethod(name="Relay")
    async def relay(self, call: dict[str, Any]) -> int: ...

    @actormethod(name="Forget")
    async def forget(self, ttl_seconds: int) -> bool: ...

    @actormethod(name="Fail")
    async def fail(self) -> None: ...

    @actormethod(name="Schedule")
    async def schedule(self, period_seconds: int) -> None: ...

    @actormethod(name="Unschedule")
    async def unschedule(self) -> None: ...


class SdkCounter(Actor, SdkCounterInterface, Remindable):
    def __init__(self, ctx: Any, actor_id: Any) -> None:
        super().__init__(ctx, actor_id)

    async def _on_activate(self) -> None:
        record(kind="activate", id=self.id.id, name=type(self).__name__)

    async def _on_deactivate(self) -> None:
        record(kind="deactivate", id=self.id.id, name=type(self).__name__)

    async def incr(self, by: int) -> int:
        _, count = await self._state_manager.try_get_state("count")
        count = (count or 0) + by
        await self._state_manager.set_state("count", count)
        await self._state_manager.save_state()
        return count

    async def get(self) -> dict[str, Any]:
        _, count = await self._state_manager.try_get_state("count")
        _, history = await self._state_manager.try_get_state("history")
        return {"count": count or 0, "history": history or []}

    async def set_history(self, history: list[Any]) -> None:
        await self._state_manager.set_state("history", history)
        await self._state_manager.save_state()

    async def forward(self, call: dict[str, Any]) -> int:
        """Calls another actor from inside this one's turn, through the SDK's proxy."""
        other = ActorProxy.create(call.get("type", "SdkCounter"), ActorId(call["to"]),
                                  SdkCounterInterface)
        result: int = await other.Incr(call["by"])
        return result

    async def relay(self, call: dict[str, Any]) -> int:
        """Calls ``Forward`` of actor ``via``, which calls ``Incr`` of this actor back: a
        reentrant call, which only a type with reentrancy enabled takes inside its turn."""
        via = ActorProxy.create(type(self).__name__, ActorId(call["via"]),
                                SdkCounterInterface)
        result: int = await via.Forward({"to": self.id.id, "by": call["by"],
                                         "type": type(self).__name__})
        return result

    async def forget(self, ttl_seconds: int) -> bool:
        """Removes ``history`` and keeps ``note`` for ``ttl_seconds`` (state TTL)."""
        await self._state_manager.set_state_ttl("note", "short-lived", ttl_seconds)
        removed = await self._state_manager.try_remove_state("history")
        await self._state_manager.save_state()
        return removed

    async def fail(self) -> None:
        raise ValueError("failed on purpose")

    async def schedule(self, period_seconds: int) -> None:
        period = timedelta(seconds=period_seconds)
        await self.register_reminder("ping", b"reminder-state", timedelta(seconds=1), period)
        await self.register_timer("tick", self.on_tick, {"from": "timer"},
                                  timedelta(seconds=1), period)

    async def unschedule(self) -> None:
        await self.unregister_reminder("ping")
        await self.unregister_timer("tick")

    async def on_tick(self, state: Any) -> None:
        record(kind="timer", id=self.id.id, name="tick", state=state)

    async def receive_reminder(self, name: str, state: bytes, due_time: timedelta,
                               period: timedelta, ttl: timedelta | None = None) -> None:
        record(kind="reminder", id=self.id.id, name=name, state=state.decode(),
               period=period.total_seconds() if isinstance(period, timedelta) else period)


class SdkSleeper(SdkCounter):
    """The same actor as another type, deactivated after 2 s idle (its ``entitiesConfig``)."""


class SdkReentrant(SdkCounter):
    """The same actor as another type with Dapr's reentrancy enabled (``entitiesConfig``)."""


app = FastAPI(title="SdkCounterService")
actor = DaprActor(app)
# whole seconds: the SDK writes durations as 0h0m3s0ms0μs, rounding fractions of a second
ActorRuntime.set_actor_config(ActorRuntimeConfig(
    actor_idle_timeout=timedelta(hours=1), actor_scan_interval=timedelta(seconds=1),
    actor_type_configs=[
        ActorTypeConfig("SdkSleeper", actor_idle_timeout=timedelta(seconds=2)),
        ActorTypeConfig("SdkReentrant",
                        reentrancy=ActorReentrancyConfig(enabled=True, maxStackDepth=4)),
    ],
))


@app.on_event("startup")
async def startup_event() -> None:
    await actor.register_actor(SdkCounter)
    await actor.register_actor(SdkSleeper)
    await actor.register_actor(SdkReentrant)


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(os.environ["APP_PORT"]), log_level="warning")
