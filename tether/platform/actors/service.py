"""The actors block for any front end: Dapr's actor API on the broker and a state store.

- **Calls** (``InvokeActor``) are invocation calls (:class:`~tether.platform.invocation.
  InvocationService`) routed to the actor type's topic with the actor id as the partition
  key: whichever sidecar owns the id's partition hosts the actor and takes its calls one
  at a time (:mod:`tether.workers.actors`).
- **State** lives in the state component marked ``actorStateStore: true``, under Dapr's
  keys ``<app-id>||<type>||<id>||<key>``; a transaction of upserts and deletes is atomic.
- **Reminders** are durable: the definition is kept in the actor state store and each fire
  is a delayed call on the actor's topic (the component's scheduler holds it until due),
  so it survives restarts and runs as a turn of the actor on whichever sidecar hosts it
  then. A registration replaces the previous one (a new generation: older fires skip).
- **Timers** are not durable, as in Dapr: their registration travels to the actor's host,
  which fires them while the actor stays active there.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tether.brokers import BrokerError
from tether.platform import errors, tracing
from tether.platform.actors.messages import (
    REMINDER_HEADER,
    Reminder,
    actor_topic,
    method_path,
    reminder_key,
    reminder_path,
    state_key,
    timers_path,
)
from tether.platform.actors.schedule import Schedule, ScheduleFormatError
from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.components import Component
from tether.platform.components.metadata import is_truthy
from tether.platform.errors import ApiError
from tether.platform.invocation import InvocationService, InvokeReply, InvokeRequest, Route
from tether.platform.invocation.messages import Headers, trace_of, with_trace
from tether.platform.pubsub import PubSubRegistry, runtime_pubsub
from tether.platform.pubsub.scheduled import publish_at
from tether.platform.state.registry import state_store_spec
from tether.platform.state.store import (
    DeleteOperation,
    SetOperation,
    StateStore,
    StateStoreError,
)

log = logging.getLogger(__name__)

ACTOR_STATE_STORE = "actorStateStore"
#: a reminder's call waits this long for the app (it is not bound to any caller's deadline)
REMINDER_CALL_TIMEOUT = 60.0

INSTANCE_MISSING = "ERR_ACTOR_INSTANCE_MISSING"
INVOKE_METHOD = "ERR_ACTOR_INVOKE_METHOD"
RUNTIME_NOT_FOUND = "ERR_ACTOR_RUNTIME_NOT_FOUND"
STATE_GET = "ERR_ACTOR_STATE_GET"
STATE_TRANSACTION = "ERR_ACTOR_STATE_TRANSACTION_SAVE"
REMINDER_CREATE = "ERR_ACTOR_REMINDER_CREATE"
REMINDER_GET = "ERR_ACTOR_REMINDER_GET"
REMINDER_DELETE = "ERR_ACTOR_REMINDER_DELETE"
TIMER_CREATE = "ERR_ACTOR_TIMER_CREATE"
TIMER_DELETE = "ERR_ACTOR_TIMER_DELETE"


def actor_state_component(components: Sequence[Component]) -> Component | None:
    """The state component marked ``actorStateStore: true`` (Dapr allows one)."""
    marked = [c for c in components
              if c.block == "state" and is_truthy(str(c.value(ACTOR_STATE_STORE) or ""))]
    if len(marked) > 1:
        raise BlockConfigError(
            f"state components {', '.join(repr(c.name) for c in marked)} are all marked "
            f"{ACTOR_STATE_STORE}: true; mark one"
        )
    return marked[0] if marked else None


#: (actor type, id), timer name, its registration (None: delete) -> done here
LocalTimers = Callable[[tuple[str, str], str, dict[str, Any] | None], bool]
#: (actor type, id), method, body, headers, timeout -> the app's answer when the call
#: re-enters a turn in progress on this sidecar, else None
LocalReentry = Callable[[tuple[str, str], str, bytes, Headers, float | None],
                        Awaitable[InvokeReply | None]]


@dataclass(frozen=True, slots=True)
class StateOperation:
    """One item of an actor state transaction: an upsert (``value`` is the JSON value)
    or a delete."""

    operation: str
    key: str
    value: Any = None
    ttl_seconds: int | None = None


class ActorService:
    """Actor calls, state, reminders and timer registrations for one sidecar."""

    def __init__(self, context: BlockContext) -> None:
        self.app_id = context.app_id
        self._registry: PubSubRegistry = context.pubsub
        self.pubsub = runtime_pubsub(context.pubsub)
        self.calls = InvocationService(context)
        self._resiliency = context.resiliency
        component = actor_state_component(context.components)
        self._store_spec = state_store_spec(component) if component is not None else None
        self.store_name = component.name if component is not None else None
        self.store: StateStore | None = None
        #: set by this sidecar's actor host: registers a timer of an actor active here
        #: (False when it is not), so an actor's own timer calls never wait behind its turn
        self.local_timers: LocalTimers | None = None
        #: set by this sidecar's actor host: a call carrying the reentrancy id of a turn in
        #: progress here enters that turn (the broker would hold it behind the turn)
        self.local_reentry: LocalReentry | None = None

    async def start(self) -> None:
        await self.calls.start()
        if self._store_spec is not None:
            self.store = await self._store_spec.opener()

    async def close(self) -> None:
        await self.calls.close()
        store, self.store = self.store, None
        if store is not None:
            await store.close()

    # --- calls ---------------------------------------------------------------------------
    def _route(self, actor_type: str, actor_id: str) -> Route:
        topic = actor_topic(actor_type)
        return Route(topic, topic, f"actor {actor_type}", key=actor_id)

    async def invoke(self, actor_type: str, actor_id: str, method: str, body: bytes,
                     headers: Headers, timeout: float | None = None) -> InvokeReply:
        """The actor method's answer (the app's status, headers and body); ApiError with
        Dapr's ERR_ACTOR_INVOKE_METHOD when no host answers."""
        _check_names(actor_type, actor_id)
        if not method:
            raise ApiError(400, errors.MALFORMED_REQUEST, "the method name is empty")
        tracer = tracing.tracer(self.app_id)
        if tracer is None:
            return await self._invoke(actor_type, actor_id, method, body, headers, timeout)
        attributes = {"rpc.system": "dapr", "rpc.method": method,
                      "dapr.actor.type": actor_type, "dapr.actor.id": actor_id}
        with tracer.span(f"invoke actor {actor_type}/{method}", tracing.CLIENT,
                         trace_of(headers), attributes) as span:
            reply = await self._invoke(actor_type, actor_id, method, body,
                                       with_trace(headers, span.headers()), timeout)
            span.set("http.response.status_code", reply.status)
            if reply.status >= 500:
                span.fail(f"HTTP {reply.status}")
            return reply

    async def _invoke(self, actor_type: str, actor_id: str, method: str, body: bytes,
                      headers: Headers, timeout: float | None) -> InvokeReply:
        reentry = self.local_reentry
        if reentry is not None:
            reply = await reentry((actor_type, actor_id), method, body, headers, timeout)
            if reply is not None:
                return reply
        return await self._call(actor_type, actor_id, "PUT",
                                method_path(actor_type, actor_id, method), headers, body,
                                timeout)

    async def _call(self, actor_type: str, actor_id: str, verb: str, path: str,
                    headers: Headers, body: bytes, timeout: float | None) -> InvokeReply:
        try:
            return await self.calls.call(
                self._route(actor_type, actor_id), verb, path, headers, body, timeout,
                self._resiliency.policy_for_actor(actor_type),
            )
        except ApiError as exc:
            if exc.code != errors.DIRECT_INVOKE:
                raise
            message = exc.message.replace(f"id: actor {actor_type}",
                                          f"actor {actor_type}/{actor_id}")
            raise ApiError(exc.status, INVOKE_METHOD, message) from exc

    # --- state ---------------------------------------------------------------------------
    def _store(self, code: str) -> StateStore:
        if self.store is None:
            raise ApiError(500, RUNTIME_NOT_FOUND,
                           "the state store is not configured to use the actor runtime: "
                           f"mark one state component with {ACTOR_STATE_STORE}: true")
        return self.store

    async def get_state(self, actor_type: str, actor_id: str, key: str) -> bytes | None:
        _check_names(actor_type, actor_id)
        store = self._store(STATE_GET)
        try:
            item = await store.get(state_key(self.app_id, actor_type, actor_id, key))
        except StateStoreError as exc:
            raise ApiError(500, STATE_GET, f"error getting actor state: {exc}") from exc
        return None if item is None else item.value

    async def transaction(self, actor_type: str, actor_id: str,
                          operations: Sequence[StateOperation]) -> None:
        _check_names(actor_type, actor_id)
        store = self._store(STATE_TRANSACTION)
        ops: list[SetOperation | DeleteOperation] = []
        for op in operations:
            key = state_key(self.app_id, actor_type, actor_id, op.key)
            if op.operation == "upsert":
                value = json.dumps(op.value, separators=(",", ":")).encode()
                ops.append(SetOperation(key, value, ttl_seconds=op.ttl_seconds,
                                        content_type="application/json"))
            else:
                ops.append(DeleteOperation(key))
        try:
            await store.transact(ops)
        except StateStoreError as exc:
            raise ApiError(500, STATE_TRANSACTION,
                           f"error saving actor transaction state: {exc}") from exc

    # --- reminders -----------------------------------------------------------------------
    async def create_reminder(self, actor_type: str, actor_id: str, name: str,
                              due_time: str, period: str, ttl: str, data: Any) -> None:
        _check_names(actor_type, actor_id)
        try:
            schedule = Schedule.parse(due_time, period, ttl)
        except ScheduleFormatError as exc:
            raise ApiError(400, REMINDER_CREATE, f"error creating actor reminder: {exc}"
                           ) from exc
        store = self._store(REMINDER_CREATE)
        reminder = Reminder(name, due_time, period, ttl, data, uuid.uuid4().hex)
        try:
            await store.set(SetOperation(reminder_key(actor_type, actor_id, name),
                                         reminder.to_json()))
            await self.schedule_fire(actor_type, actor_id, reminder, schedule.due)
        except (StateStoreError, BrokerError) as exc:
            raise ApiError(500, REMINDER_CREATE, f"error creating actor reminder: {exc}"
                           ) from exc

    async def schedule_fire(self, actor_type: str, actor_id: str, reminder: Reminder,
                            due: datetime) -> None:
        """Put the reminder's next fire on the actor's topic, held until ``due``."""
        if self.pubsub is None:
            raise BrokerError("the app has no pub/sub component to schedule reminders on")
        request = InvokeRequest(
            id=uuid.uuid4().hex, caller=self.app_id, callee=f"actor {actor_type}",
            verb="PUT", path=reminder_path(actor_type, actor_id, reminder.name),
            headers=[(REMINDER_HEADER, f"{reminder.name}@{reminder.generation}"),
                     ("Content-Type", "application/json")],
            body=reminder.app_body(), deadline=0.0, reply_to="", key=actor_id,
        )
        broker = await self._registry.broker(self.pubsub)
        topic = actor_topic(actor_type)
        await broker.create_topic(topic)
        await publish_at(broker, topic, [request.to_event()], [due.astimezone(UTC)])

    async def save_reminder(self, actor_type: str, actor_id: str, reminder: Reminder) -> None:
        """Keep ``reminder`` as it is now (its fire count after a fire)."""
        await self._store(REMINDER_CREATE).set(
            SetOperation(reminder_key(actor_type, actor_id, reminder.name), reminder.to_json()))

    async def get_reminder(self, actor_type: str, actor_id: str,
                           name: str) -> Reminder | None:
        _check_names(actor_type, actor_id)
        store = self._store(REMINDER_GET)
        try:
            item = await store.get(reminder_key(actor_type, actor_id, name))
        except StateStoreError as exc:
            raise ApiError(500, REMINDER_GET, f"error getting actor reminder: {exc}") from exc
        return None if item is None else Reminder.from_json(item.value)

    async def delete_reminder(self, actor_type: str, actor_id: str, name: str) -> None:
        _check_names(actor_type, actor_id)
        store = self._store(REMINDER_DELETE)
        try:
            await store.delete(DeleteOperation(reminder_key(actor_type, actor_id, name)))
        except StateStoreError as exc:
            raise ApiError(500, REMINDER_DELETE, f"error deleting actor reminder: {exc}"
                           ) from exc

    # --- timers --------------------------------------------------------------------------
    async def timer(self, actor_type: str, actor_id: str, name: str,
                    body: Mapping[str, Any] | None) -> None:
        """Register (``body``) or delete (None) a timer on the actor's host."""
        _check_names(actor_type, actor_id)
        code = TIMER_CREATE if body is not None else TIMER_DELETE
        if body is not None:
            try:
                Schedule.parse(str(body.get("dueTime") or ""), str(body.get("period") or ""),
                               str(body.get("ttl") or ""))
            except ScheduleFormatError as exc:
                raise ApiError(400, code, f"error creating actor timer: {exc}") from exc
        local = self.local_timers
        if local is not None and local((actor_type, actor_id), name,
                                       dict(body) if body is not None else None):
            return
        payload = json.dumps(body).encode() if body is not None else b""
        reply = await self._call(actor_type, actor_id, "PUT" if body is not None else "DELETE",
                                 timers_path(actor_type, actor_id, name),
                                 [("Content-Type", "application/json")], payload, None)
        if reply.status >= 300:
            raise ApiError(500, code, f"timer {name} of actor {actor_type}/{actor_id}: "
                                      f"{reply.body.decode(errors='replace')}")


def _check_names(actor_type: str, actor_id: str) -> None:
    if not actor_type or not actor_id:
        raise ApiError(400, INSTANCE_MISSING, "actor type and id are required")
    if "||" in actor_type or "||" in actor_id:
        raise ApiError(400, INSTANCE_MISSING, "an actor type or id must not contain '||'")
