"""The host side of actors: a sidecar taking the calls of the actor types its app hosts.

At start the sidecar asks the app which types it hosts (Dapr's ``GET /dapr/config``:
``entities``, ``actorIdleTimeout``, ``actorScanInterval``, ``drainOngoingCallTimeout``,
``drainRebalancedActors``, ``reentrancy``). For each type an :class:`ActorTypeWorker`
consumes the type's topic in the type's group, one call per actor id at a time (the broker
hands out one unsettled record per key): the partition an id hashes to decides which
sidecar hosts it, so there is no placement service, and a rebalance moves actors with their
partitions.

:class:`ActorHost` keeps the actors active here (activation is implicit: the app's SDK
activates an actor on its first call) and a lock per actor, so that a timer never runs
beside a turn. Every ``actorScanInterval`` it deactivates (``DELETE /actors/{type}/{id}``
on the app) the actors idle longer than ``actorIdleTimeout`` and those whose partition
moved to another sidecar (``drainRebalancedActors``), and stops their timers. A reminder's
fire arrives as a call on the actor's topic (held by the scheduler until due): it runs as a
turn, is skipped when the reminder was deleted or registered again since, is retried when
the app fails, and schedules the next fire before it is acknowledged.

Reentrancy (Dapr's, for the types whose config enables it): each turn carries a
``Dapr-Reentrancy-Id`` (the caller's, else a new one) to the app, whose SDK copies it onto
the actor calls it makes; a call back into the actor with that id enters the turn in
progress instead of queueing behind it, up to ``maxStackDepth`` deep. The broker would hold
such a call behind the turn's record, so it enters only when it reaches the sidecar hosting
the turn (one replica, or the whole chain's actors hosted on one sidecar).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from tether.brokers import Broker, BrokerError, Delivery
from tether.platform.actors.messages import (
    REENTRANCY_HEADER,
    REMINDER_HEADER,
    actor_topic,
    method_path,
    timer_path,
)
from tether.platform.actors.schedule import Schedule
from tether.platform.actors.service import INVOKE_METHOD, REMINDER_CALL_TIMEOUT, ActorService
from tether.platform.aio import cancel_task
from tether.platform.components.metadata import DurationError, parse_duration
from tether.platform.errors import ApiError
from tether.platform.http1 import Answer, Http1Pool
from tether.platform.invocation import InvokeReply, InvokeRequest
from tether.platform.invocation.messages import Headers
from tether.workers.app_channel import API_TOKEN_HEADER, DEFAULT_HOST
from tether.workers.invocation import InvocationWorker
from tether.workers.retry import Backoff

log = logging.getLogger(__name__)

CONFIG_PATH = "/dapr/config"
#: a reminder whose app call failed is tried again after this backoff
REMINDER_BACKOFF = Backoff(initial=1.0, maximum=30.0)

ActorKey = tuple[str, str]
#: Dapr's default maxStackDepth of a reentrant actor
MAX_STACK_DEPTH = 32


def _seconds(value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    try:
        return parse_duration(str(value))
    except DurationError:
        log.warning("actor config: %r is not a duration; using %gs", value, default)
        return default


def _reentrancy(value: Any) -> int | None:
    """The max stack depth of Dapr's ``reentrancy`` object, None when not enabled."""
    if not isinstance(value, dict) or value.get("enabled") is not True:
        return None
    depth = value.get("maxStackDepth")
    return depth if isinstance(depth, int) and depth > 0 else MAX_STACK_DEPTH


def _reentrancy_id(headers: Headers) -> str | None:
    wanted = REENTRANCY_HEADER.lower()
    return next((v for k, v in headers if k.lower() == wanted and v), None)


@dataclass(frozen=True, slots=True)
class ActorConfig:
    """What the app answered to ``GET /dapr/config`` (Dapr's defaults otherwise)."""

    entities: tuple[str, ...] = ()
    idle_timeout: float = 3600.0
    scan_interval: float = 30.0
    drain_timeout: float = 60.0
    drain_rebalanced: bool = True
    #: per type: (idle timeout) from ``entitiesConfig``
    idle_by_type: dict[str, float] = field(default_factory=dict)
    #: the reentrant types and their max stack depth (``reentrancy``, per type too)
    reentrancy: dict[str, int] = field(default_factory=dict)

    @classmethod
    def parse(cls, body: Any) -> ActorConfig:
        if not isinstance(body, dict):
            return cls()
        entities = tuple(str(e) for e in body.get("entities") or () if str(e))
        idle = _seconds(body.get("actorIdleTimeout"), 3600.0)
        by_type: dict[str, float] = {}
        depth = _reentrancy(body.get("reentrancy"))
        reentrant = {e: depth for e in entities if depth is not None}
        for entry in body.get("entitiesConfig") or ():
            if not isinstance(entry, dict):
                continue
            for name in entry.get("entities") or ():
                if entry.get("actorIdleTimeout"):
                    by_type[str(name)] = _seconds(entry["actorIdleTimeout"], idle)
                if "reentrancy" in entry:
                    own = _reentrancy(entry["reentrancy"])
                    if own is None:
                        reentrant.pop(str(name), None)
                    else:
                        reentrant[str(name)] = own
        return cls(
            entities=entities, idle_timeout=idle,
            scan_interval=_seconds(body.get("actorScanInterval"), 30.0),
            drain_timeout=_seconds(body.get("drainOngoingCallTimeout"), 60.0),
            drain_rebalanced=body.get("drainRebalancedActors", True) is not False,
            idle_by_type=by_type, reentrancy=reentrant,
        )


async def fetch_actor_config(app_port: int, api_token: str | None = None,
                             host: str = DEFAULT_HOST, attempts: int = 20) -> ActorConfig:
    """The app's actor configuration; no actor types when it has none (404, not JSON)."""
    pool = Http1Pool(host, app_port, limit=1)
    headers = {API_TOKEN_HEADER: api_token} if api_token else {}
    try:
        for attempt in range(attempts):
            try:
                answer = await pool.request("GET", CONFIG_PATH, b"", headers, timeout=5)
            except (TimeoutError, OSError):
                await asyncio.sleep(min(0.1 * 2**attempt, 1.0))
                continue
            if answer.status != 200:
                return ActorConfig()
            try:
                return ActorConfig.parse(json.loads(answer.body))
            except ValueError:
                return ActorConfig()
        return ActorConfig()
    finally:
        await pool.close()


def _actor_of(path: str) -> ActorKey | None:
    """(type, id) of ``/actors/{type}/{id}/...`` or ``/tether/actors/{type}/{id}/...``."""
    parts = path.lstrip("/").split("/")
    if parts[:1] == ["tether"]:
        parts = parts[1:]
    if len(parts) >= 3 and parts[0] == "actors":
        return parts[1], parts[2]
    return None


class AppTransport(Protocol):
    """How the host reaches the app: HTTP (:class:`~tether.platform.http1.Http1Pool`), or
    a ``tether.App``'s actor classes in the same process (``tether.sdk.actors``)."""

    async def request(self, method: str, target: str, body: bytes = b"",
                      headers: dict[str, str] | None = None, *,
                      timeout: float | None = None) -> Answer: ...

    async def close(self) -> None: ...


class ActorTypeWorker(InvocationWorker):
    """The calls of one actor type: turns made under the host's lock of their actor."""

    def __init__(self, host: ActorHost, actor_type: str, broker: Broker, app_port: int,
                 api_token: str | None, drain_timeout: float) -> None:
        topic = actor_topic(actor_type)
        super().__init__(broker, host.service.app_id, app_port, api_token=api_token,
                         drain_timeout=drain_timeout, topic=topic, group=topic, ordered=True)
        if host.transport is not None:  # in process: the app's own classes, not HTTP
            self._pool = host.transport  # type: ignore[assignment]
        self.host = host
        self.actor_type = actor_type

    @property
    def assigned(self) -> list[int] | None:
        source = self._source
        return None if source is None else getattr(source, "assigned_partitions", None)

    async def _handle(self, delivery: Delivery) -> None:
        try:
            request = InvokeRequest.from_event(delivery.event)
        except ValueError:
            await super()._handle(delivery)
            return
        actor = _actor_of(request.path)
        if actor is not None:
            self.host.seen(actor, delivery.partition)
        marker = next((v for k, v in request.headers if k.lower() == REMINDER_HEADER), None)
        if marker is None or actor is None:
            await super()._handle(delivery)
            return
        await self.host.fire_reminder(actor, marker, request, delivery)

    def _span_of(self, request: InvokeRequest) -> tuple[str, dict[str, str]]:
        name, attributes = super()._span_of(request)
        actor = _actor_of(request.path)
        if actor is None:
            return name, attributes
        method = request.path.split("?", 1)[0].rsplit("/method/", 1)[-1]
        attributes.update({"rpc.method": method, "dapr.actor.type": actor[0],
                           "dapr.actor.id": actor[1]})
        return f"invoked actor {actor[0]}/{method}", attributes

    async def _call(self, request: InvokeRequest, remaining: float) -> InvokeReply | None:
        actor = _actor_of(request.path)
        if actor is None:
            return await super()._call(request, remaining)
        if request.path.startswith("/tether/"):  # a timer's registration, for this host
            return await self.host.timer_request(actor, request)
        chain: str | None = None
        if actor[0] in self.host.config.reentrancy:
            chain = _reentrancy_id(request.headers)
            if chain is None:
                chain = uuid.uuid4().hex
                request = replace(request, headers=[*request.headers,
                                                    (REENTRANCY_HEADER, chain)])
        async with self.host.turn(actor, chain):
            return await super()._call(request, remaining)

    async def call_app(self, request: InvokeRequest, remaining: float) -> InvokeReply | None:
        """The app's answer to ``request`` outside any turn (a reentrant call)."""
        return await super()._call(request, remaining)


class ActorHost:
    """The actor types one sidecar hosts for its app."""

    def __init__(self, service: ActorService, broker: Broker, app_port: int,
                 config: ActorConfig, *, api_token: str | None = None,
                 host: str = DEFAULT_HOST, transport: AppTransport | None = None) -> None:
        self.service = service
        self.config = config
        self.broker = broker
        #: the app in this process (``tether.App``); None: over HTTP on ``app_port``
        self.transport = transport
        self._pool: AppTransport = transport or Http1Pool(host, app_port, limit=100)
        self._api_token = api_token
        self.workers = {
            t: ActorTypeWorker(self, t, broker, app_port, api_token, config.drain_timeout)
            for t in config.entities
        }
        #: the actors active here: last use (monotonic) and the partition they came on
        self.active: dict[ActorKey, tuple[float, int | None]] = {}
        self._locks: dict[ActorKey, asyncio.Lock] = {}
        #: a reentrant actor's turn in progress: its reentrancy id and how deep it is
        self._chains: dict[ActorKey, list[Any]] = {}
        self._timers: dict[tuple[str, str, str], asyncio.Task[None]] = {}
        self._scanner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        for actor_type, worker in self.workers.items():
            await self.broker.create_topic(actor_topic(actor_type))
            await worker.start()
        self.service.local_timers = self.local_timer
        self.service.local_reentry = self.reenter
        self._scanner = asyncio.create_task(self._scan(), name="actors:scan")
        log.info("hosting actor types %s", ", ".join(self.workers) or "none")

    async def stop(self) -> None:
        """Take no more calls, let turns in flight finish, deactivate what is active."""
        self.service.local_timers = None
        self.service.local_reentry = None
        await cancel_task(self._scanner)
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        for actor in list(self.active):
            await self.deactivate(actor, "the sidecar stops")
        await self._pool.close()

    def counts(self) -> list[dict[str, object]]:
        """``/v1.0/metadata``'s ``actors``: active actors per hosted type."""
        return [{"type": t, "count": sum(1 for a in self.active if a[0] == t)}
                for t in self.workers]

    # --- turns -----------------------------------------------------------------------------
    def seen(self, actor: ActorKey, partition: int | None) -> None:
        self.active[actor] = (time.monotonic(), partition)

    @contextlib.asynccontextmanager
    async def turn(self, actor: ActorKey, chain: str | None = None) -> AsyncIterator[None]:
        """The actor's turn; ``chain``: its reentrancy id, which calls back may enter by."""
        lock = self._locks.setdefault(actor, asyncio.Lock())
        async with lock:
            if chain is not None:
                self._chains[actor] = [chain, 1]
            try:
                yield
            finally:
                self._chains.pop(actor, None)
                _, partition = self.active.get(actor, (0.0, None))
                self.active[actor] = (time.monotonic(), partition)

    async def reenter(self, actor: ActorKey, method: str, body: bytes, headers: Headers,
                      timeout: float | None) -> InvokeReply | None:
        """The app's answer to a call that re-enters the actor's turn in progress here (same
        reentrancy id); None when it does not (it then queues on the broker as any call)."""
        chain = _reentrancy_id(headers)
        entry = self._chains.get(actor)
        worker = self.workers.get(actor[0])
        if chain is None or entry is None or entry[0] != chain or worker is None:
            return None
        if entry[1] >= self.config.reentrancy.get(actor[0], MAX_STACK_DEPTH):
            raise ApiError(500, INVOKE_METHOD, f"actor {actor[0]}/{actor[1]}: maximum "
                                               "stack depth exceeded")
        seconds = self.service.calls.default_timeout if timeout is None else timeout
        request = InvokeRequest(
            id=uuid.uuid4().hex, caller=self.service.app_id, callee=f"actor {actor[0]}",
            verb="PUT", path=method_path(actor[0], actor[1], method), headers=headers,
            body=body, deadline=time.time() + seconds, reply_to="", key=actor[1],
        )
        entry[1] += 1
        try:
            reply = await worker.call_app(request, seconds)
        finally:
            entry[1] -= 1
        if reply is None:
            raise ApiError(504, INVOKE_METHOD, f"actor {actor[0]}/{actor[1]}: no answer "
                                               f"within {seconds:g}s (the call's deadline)")
        return reply

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self._api_token:
            headers[API_TOKEN_HEADER] = self._api_token
        return headers

    async def _app_call(self, method: str, path: str, body: bytes = b"") -> int | None:
        """The app's status, or None when it could not be reached."""
        try:
            answer = await self._pool.request(method, path, body, self._headers(),
                                              timeout=REMINDER_CALL_TIMEOUT)
        except (TimeoutError, OSError, ValueError) as exc:
            log.info("%s %s failed: %r", method, path, exc)
            return None
        return answer.status

    # --- deactivation ----------------------------------------------------------------------
    async def deactivate(self, actor: ActorKey, why: str) -> None:
        if self.active.pop(actor, None) is None:
            return
        for key in [k for k in self._timers if k[:2] == actor]:
            await cancel_task(self._timers.pop(key))
        async with self._locks.setdefault(actor, asyncio.Lock()):
            status = await self._app_call("DELETE", f"/actors/{actor[0]}/{actor[1]}")
        self._locks.pop(actor, None)
        log.debug("actor %s/%s deactivated (%s): app answered %s", *actor, why, status)

    async def _scan(self) -> None:
        while True:
            await asyncio.sleep(self.config.scan_interval)
            await self.scan_once()

    async def scan_once(self) -> None:
        now = time.monotonic()
        for actor, (last, partition) in list(self.active.items()):
            idle = self.config.idle_by_type.get(actor[0], self.config.idle_timeout)
            lock = self._locks.get(actor)
            if lock is not None and lock.locked():
                continue  # in a turn: not idle
            if now - last > idle:
                await self.deactivate(actor, f"idle for more than {idle:g}s")
                continue
            worker = self.workers.get(actor[0])
            assigned = worker.assigned if worker is not None else None
            if (self.config.drain_rebalanced and partition is not None
                    and assigned is not None and partition not in assigned):
                await self.deactivate(actor, "its partition moved to another sidecar")

    # --- reminders -------------------------------------------------------------------------
    async def fire_reminder(self, actor: ActorKey, marker: str, request: InvokeRequest,
                            delivery: Delivery) -> None:
        name, _, generation = marker.partition("@")
        try:
            reminder = await self.service.get_reminder(actor[0], actor[1], name)
        except Exception as exc:  # the store is down: try again later
            log.warning("reminder %s of %s/%s: cannot read it (%s); retrying", name, *actor, exc)
            await _nack(delivery, REMINDER_BACKOFF.delay(delivery.delivery_count))
            return
        if reminder is None or reminder.generation != generation:
            await _ack(delivery)  # deleted, or registered again since: an old fire
            return
        async with self.turn(actor):
            status = await self._app_call("PUT", request.path, request.body)
        if status is None or not 200 <= status < 300:
            log.info("reminder %s of %s/%s: the app answered %s; retrying", name, *actor,
                     status)
            await _nack(delivery, REMINDER_BACKOFF.delay(delivery.delivery_count))
            return
        fired = replace(reminder, fired=reminder.fired + 1)
        try:
            schedule = Schedule.parse(reminder.due_time, reminder.period, reminder.ttl)
            following = schedule.after(datetime.now(UTC), fired.fired)
            if following is None:
                await self.service.delete_reminder(actor[0], actor[1], name)
            else:
                await self.service.save_reminder(actor[0], actor[1], fired)
                await self.service.schedule_fire(actor[0], actor[1], fired, following)
        except Exception as exc:  # the store or the broker failed: the fire stays
            log.warning("reminder %s of %s/%s: cannot schedule its next fire (%s); retrying",
                        name, *actor, exc)
            await _nack(delivery, REMINDER_BACKOFF.delay(delivery.delivery_count))
            return
        await _ack(delivery)

    # --- timers ----------------------------------------------------------------------------
    async def timer_request(self, actor: ActorKey, request: InvokeRequest) -> InvokeReply:
        name = request.path.rstrip("/").rsplit("/", 1)[-1]
        body = json.loads(request.body) if request.body else None
        self.local_timer(actor, name, body)
        return InvokeReply(request.id, 204, [], b"")

    def local_timer(self, actor: ActorKey, name: str, body: dict[str, Any] | None) -> bool:
        """Register (``body``) or delete (None) a timer of an actor active here; False when
        the actor is not active on this sidecar."""
        key = (actor[0], actor[1], name)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        if body is None:
            return True
        if actor[0] not in self.workers or actor not in self.active:
            return False
        self._timers[key] = asyncio.create_task(self._run_timer(actor, name, body),
                                                name=f"timer:{actor[0]}/{actor[1]}/{name}")
        return True

    async def _run_timer(self, actor: ActorKey, name: str, body: dict[str, Any]) -> None:
        schedule = Schedule.parse(str(body.get("dueTime") or ""), str(body.get("period") or ""),
                                  str(body.get("ttl") or ""))
        payload = json.dumps({"callback": body.get("callback", ""), "data": body.get("data"),
                              "dueTime": body.get("dueTime", ""),
                              "period": body.get("period", "")}).encode()
        due: datetime | None = schedule.due
        fired = 0
        while due is not None:
            await asyncio.sleep(max((due - datetime.now(UTC)).total_seconds(), 0.0))
            if actor not in self.active:
                return
            async with self.turn(actor):
                await self._app_call("PUT", timer_path(actor[0], actor[1], name), payload)
            fired += 1
            due = schedule.after(datetime.now(UTC), fired)
        self._timers.pop((actor[0], actor[1], name), None)


async def _ack(delivery: Delivery) -> None:
    try:
        await delivery.ack()
    except BrokerError as exc:
        log.warning("could not ack %s: %s", delivery.event.id, exc)


async def _nack(delivery: Delivery, delay: float) -> None:
    try:
        await delivery.nack(delay)
    except BrokerError as exc:
        log.warning("could not nack %s: %s", delivery.event.id, exc)
