"""Actors hosted by a :class:`tether.App` in its own process: no HTTP hop, the same
placement, turns, reminders and timers as a sidecar's host (``tether.workers.actors``).

```python
app = tether.App("bank", resources_path="components")   # pub/sub + actorStateStore

@app.actor("Account")
class Account(tether.Actor):
    async def deposit(self, amount: int) -> int:
        balance = await self.state.get("balance", 0) + amount
        self.state.set("balance", balance)        # saved when the turn succeeds
        return balance

    async def receive_reminder(self, name: str, data: Any) -> None: ...
```

A method gets the call's JSON body (None when empty) and returns a JSON value. State
changes of a turn are one transaction, written when the method returns (not when it
raises). ``register_reminder`` is durable; ``register_timer`` calls a method of the actor
while it stays active here. ``on_activate`` and ``on_deactivate`` run around an actor's
stay in memory.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from tether.platform.actors import ActorService, StateOperation
from tether.platform.errors import ApiError, error_body
from tether.platform.http1 import Answer

log = logging.getLogger(__name__)

_JSON = [("Content-Type", "application/json")]
_MISSING = object()


class ActorState:
    """One actor's state: reads through to the actor state store, writes buffered until
    the turn ends (then one transaction)."""

    def __init__(self, service: ActorService, actor_type: str, actor_id: str) -> None:
        self._service = service
        self._type = actor_type
        self._id = actor_id
        self._cache: dict[str, Any] = {}
        self._changes: dict[str, Any] = {}  # key -> value, or _MISSING for a delete

    async def get(self, key: str, default: Any = None) -> Any:
        if key in self._changes:
            value = self._changes[key]
            return default if value is _MISSING else value
        if key not in self._cache:
            raw = await self._service.get_state(self._type, self._id, key)
            self._cache[key] = _MISSING if raw is None else json.loads(raw)
        value = self._cache[key]
        return default if value is _MISSING else value

    def set(self, key: str, value: Any) -> None:
        self._changes[key] = value

    def delete(self, key: str) -> None:
        self._changes[key] = _MISSING

    async def save(self) -> None:
        """Write the turn's changes (the host does it after every successful turn)."""
        if not self._changes:
            return
        operations = [StateOperation("delete", k) if v is _MISSING
                      else StateOperation("upsert", k, v) for k, v in self._changes.items()]
        await self._service.transaction(self._type, self._id, operations)
        self._cache.update(self._changes)
        self._changes.clear()

    def discard(self) -> None:
        self._changes.clear()


class Actor:
    """Base class of an in-process actor: ``self.id``, ``self.type``, ``self.state``."""

    def __init__(self, actor_type: str, actor_id: str, service: ActorService) -> None:
        self.type = actor_type
        self.id = actor_id
        self.state = ActorState(service, actor_type, actor_id)
        self._service = service

    async def on_activate(self) -> None:
        """Called before the actor's first turn in this process."""

    async def on_deactivate(self) -> None:
        """Called when it leaves memory (idle, moved to another host, shutdown)."""

    async def receive_reminder(self, name: str, data: Any) -> None:
        """A reminder fired (override to use reminders)."""

    async def register_reminder(self, name: str, due_time: str = "", period: str = "",
                                ttl: str = "", data: Any = None) -> None:
        await self._service.create_reminder(self.type, self.id, name, due_time, period, ttl,
                                            data)

    async def unregister_reminder(self, name: str) -> None:
        await self._service.delete_reminder(self.type, self.id, name)

    async def register_timer(self, name: str, callback: str, due_time: str = "",
                             period: str = "", ttl: str = "", data: Any = None) -> None:
        await self._service.timer(self.type, self.id, name, {
            "callback": callback, "dueTime": due_time, "period": period, "ttl": ttl,
            "data": data})

    async def unregister_timer(self, name: str) -> None:
        await self._service.timer(self.type, self.id, name, None)


A = TypeVar("A", bound=type[Actor])
ActorFactory = Callable[[str, str, ActorService], Actor]


def _answer(status: int, value: Any) -> Answer:
    return Answer(status, list(_JSON), json.dumps(value).encode())


class InProcessActors:
    """The host's transport to actor classes of this process: it reads the paths Dapr
    calls an app on and runs the actor's methods (one instance per active actor)."""

    def __init__(self, service: ActorService, types: dict[str, ActorFactory]) -> None:
        self._service = service
        self._types = types
        self._instances: dict[tuple[str, str], Actor] = {}

    async def request(self, method: str, target: str, body: bytes = b"",
                      headers: dict[str, str] | None = None, *,
                      timeout: float | None = None) -> Answer:
        parts = target.split("?", 1)[0].strip("/").split("/")
        if len(parts) < 3 or parts[0] != "actors" or parts[1] not in self._types:
            return _answer(404, error_body("ERR_ACTOR_INSTANCE_MISSING", f"no actor at {target}"))
        key = (parts[1], parts[2])
        if method == "DELETE" and len(parts) == 3:
            actor = self._instances.pop(key, None)
            if actor is not None:
                await actor.on_deactivate()
            return Answer(200, [], b"")
        if len(parts) < 5 or parts[3] != "method":
            return _answer(404, error_body("ERR_ACTOR_INSTANCE_MISSING", f"no route {target}"))
        actor = await self._actor(key)
        payload = json.loads(body) if body.strip() else None
        try:
            if parts[4] == "remind" and len(parts) == 6:
                await actor.receive_reminder(parts[5], (payload or {}).get("data"))
                result = None
            elif parts[4] == "timer" and len(parts) == 6:
                callback = getattr(actor, str((payload or {}).get("callback") or ""), None)
                if callback is None:
                    raise AttributeError(f"the timer's callback "
                                         f"{(payload or {}).get('callback')!r} is not a method")
                result = await _call(callback, (payload or {}).get("data"))
            else:
                handler = getattr(actor, parts[4], None)
                if parts[4].startswith("_") or not callable(handler):
                    actor.state.discard()
                    return _answer(404, error_body("ERR_ACTOR_INVOKE_METHOD",
                                                   f"actor type {key[0]} has no method "
                                                   f"{parts[4]}"))
                result = await _call(handler, payload)
            await actor.state.save()
        except ApiError as exc:
            actor.state.discard()
            return _answer(exc.status, error_body(exc.code, exc.message))
        except Exception as exc:
            actor.state.discard()
            log.exception("actor %s/%s: %s failed", *key, "/".join(parts[4:]))
            return _answer(500, error_body("ERR_ACTOR_INVOKE_METHOD",
                                           f"{type(exc).__name__}: {exc}"))
        return _answer(200, result)

    async def _actor(self, key: tuple[str, str]) -> Actor:
        actor = self._instances.get(key)
        if actor is None:
            actor = self._types[key[0]](key[0], key[1], self._service)
            self._instances[key] = actor
            await actor.on_activate()
        return actor

    async def close(self) -> None:
        pass


async def _call(handler: Callable[..., Any], payload: Any) -> Any:
    takes = len(inspect.signature(handler).parameters)
    result = handler(payload) if takes else handler()
    if inspect.isawaitable(result):
        result = await result
    return result
