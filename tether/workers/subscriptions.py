"""The app's subscriptions, delivered: what connects ``tether run`` to the delivery workers.

Once the app listens, :meth:`AppSubscriptions.start` asks it for its programmatic
subscriptions (``GET /dapr/subscribe``), merges them with the declarative ones visible to it,
checks each against the pub/sub components and their topic scopes, and starts one
:class:`~tether.workers.delivery.DeliveryWorker` per subscription (docs/running.md).
:meth:`AppSubscriptions.stop` drains the workers; the caller closes the brokers after.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp

from tether.brokers import BrokerError
from tether.platform import env
from tether.platform.actors import ActorService
from tether.platform.components import ProgrammaticSubscriptionError, Subscription
from tether.platform.errors import TetherError
from tether.platform.pubsub import PubSubRegistry
from tether.platform.pubsub.registry import PubSubConfigError
from tether.platform.pubsub.routing import RoutingError
from tether.platform.resiliency import Resiliency
from tether.workers.actor_events import ActorEventChannel, actor_target
from tether.workers.app_channel import (
    AppChannel,
    HttpAppChannel,
    fetch_programmatic_subscriptions,
)
from tether.workers.delivery import DeliveryOptions, DeliveryWorker

log = logging.getLogger(__name__)

DECLARATIVE = "DECLARATIVE"
PROGRAMMATIC = "PROGRAMMATIC"
#: GET /dapr/subscribe attempts while the app finishes starting (its port is already open)
FETCH_ATTEMPTS = 3
FETCH_PAUSE = 0.25
API_TOKEN_VARIABLE = env.APP_API_TOKEN


class SubscriptionError(TetherError):
    """The app's subscriptions cannot be started; the message says which and why."""


def _describe(sub: Subscription, kind: str) -> str:
    if kind == PROGRAMMATIC:
        return f"programmatic subscription (GET /dapr/subscribe) to {sub.pubsub_name}/{sub.topic}"
    return f"Subscription {sub.name!r} to {sub.pubsub_name}/{sub.topic}"


def _unreachable(exc: ProgrammaticSubscriptionError) -> bool:
    """A failed request or an error status, not a bad reply."""
    if isinstance(exc.__cause__, aiohttp.ClientError | TimeoutError):
        return True
    return exc.status is not None


def merge(
    declarative: Sequence[Subscription], programmatic: Sequence[Subscription]
) -> list[tuple[Subscription, str]]:
    """Both lists tagged with their type; one pubsub/topic twice raises, naming both."""
    seen: dict[tuple[str, str], str] = {}
    out: list[tuple[Subscription, str]] = []
    tagged = [(s, DECLARATIVE) for s in declarative] + [(s, PROGRAMMATIC) for s in programmatic]
    for sub, kind in tagged:
        key = (sub.pubsub_name, sub.topic)
        here = _describe(sub, kind)
        if key in seen:
            # one topic, two route tables: which one the app meant cannot be guessed
            raise SubscriptionError(
                f"{here} duplicates {seen[key]}: subscribe to a topic once per pub/sub"
            )
        seen[key] = here
        out.append((sub, kind))
    return out


def metadata_entry(sub: Subscription, kind: str) -> dict[str, Any]:
    """One ``subscriptions`` item of ``GET /v1.0/metadata``, in Dapr's shape."""
    rules = [{"match": r.match, "path": r.path} for r in sub.rules]
    if sub.default_path is not None:
        rules.append({"match": "", "path": sub.default_path})
    return {
        "pubsubname": sub.pubsub_name,
        "topic": sub.topic,
        "metadata": dict(sub.metadata),
        "rules": rules,
        "deadLetterTopic": sub.dead_letter_topic or "",
        "type": kind,
    }


class AppSubscriptions:
    """Delivery workers for every subscription of one app, on ``app_port``."""

    def __init__(
        self,
        app_id: str,
        app_port: int,
        registry: PubSubRegistry,
        declarative: Sequence[Subscription],
        *,
        host: str = "127.0.0.1",
        options: DeliveryOptions | None = None,
        resiliency: Resiliency | None = None,
        actors: ActorService | None = None,
    ) -> None:
        self.app_id = app_id
        self.app_port = app_port
        self.registry = registry
        self.declarative = tuple(declarative)
        self.host = host
        self.options = options or DeliveryOptions()
        #: the inbound policies of the pub/sub components (deliveries to the app)
        self.resiliency = resiliency or Resiliency()
        self.api_token = env.app_api_token()
        #: the actors block, for subscriptions delivered to actors (actor_events.py)
        self.actors = actors
        self.running: list[tuple[Subscription, str]] = []
        self._workers: list[DeliveryWorker] = []
        self._session: aiohttp.ClientSession | None = None
        self._channel: HttpAppChannel | None = None

    def metadata(self) -> list[dict[str, Any]]:
        return [metadata_entry(sub, kind) for sub, kind in self.running]

    async def start(self) -> None:
        """Fetch, check and start; SubscriptionError (after stopping what started) if any
        subscription cannot run."""
        self._session = aiohttp.ClientSession()
        try:
            programmatic = await self._fetch(self._session)
            wanted = self._allowed(merge(self.declarative, programmatic))
            self._channel = channel = HttpAppChannel(
                self.app_port, host=self.host, api_token=self.api_token
            )
            for sub, kind in wanted:
                await self._start_worker(sub, kind, channel)
        except BaseException:
            await self.stop()
            raise
        log.info(
            "app %r: %d subscription(s) delivering to port %d",
            self.app_id, len(self._workers), self.app_port,
        )

    async def _fetch(self, session: aiohttp.ClientSession) -> list[Subscription]:
        """The app's programmatic subscriptions. As daprd, an app that cannot be asked (or
        answers an error status) has none, with an error logged; a reply that is not a
        valid list stops startup (Tether's resource files are strict the same way)."""
        base = f"http://{self.host}:{self.app_port}"
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                return await fetch_programmatic_subscriptions(
                    session, base, app_id=self.app_id, api_token=self.api_token
                )
            except ProgrammaticSubscriptionError as exc:
                if not _unreachable(exc):
                    raise SubscriptionError(
                        f"bad subscription list from app {self.app_id!r}: {exc}"
                    ) from exc
                if attempt == FETCH_ATTEMPTS:
                    log.error(
                        "app %r: cannot get its programmatic subscriptions, using none: %s",
                        self.app_id, exc,
                    )
                    return []
                # the port is open but the app may still be wiring its routes
                await asyncio.sleep(FETCH_PAUSE)
        return []

    def _allowed(self, subs: list[tuple[Subscription, str]]) -> list[tuple[Subscription, str]]:
        out = []
        for sub, kind in subs:
            spec = self.registry.spec(sub.pubsub_name)
            if spec is None:
                names = ", ".join(self.registry.names) or "none"
                raise SubscriptionError(
                    f"{_describe(sub, kind)}: app {self.app_id!r} has no pub/sub component "
                    f"{sub.pubsub_name!r} (it has: {names})"
                )
            if not spec.topic_scopes.can_subscribe(self.app_id, sub.topic):
                # as daprd: a subscription the scopes forbid is skipped, not fatal
                log.warning(
                    "%s: app %r may not subscribe to topic %r (component scopes); skipped",
                    _describe(sub, kind), self.app_id, sub.topic,
                )
                continue
            out.append((sub, kind))
        return out

    def _channel_for(self, sub: Subscription, kind: str,
                     channel: HttpAppChannel) -> AppChannel:
        """The app, or the actors the subscription names (``actorType``)."""
        try:
            target = actor_target(sub.metadata)
        except (ValueError, RoutingError) as exc:
            raise SubscriptionError(f"{_describe(sub, kind)}: {exc}") from exc
        if target is None:
            return channel
        if self.actors is None:
            raise SubscriptionError(f"{_describe(sub, kind)}: names actor type {target[0]!r} "
                                    "but this sidecar has no actors block")
        return ActorEventChannel(self.actors, *target)

    async def _start_worker(self, sub: Subscription, kind: str, channel: HttpAppChannel) -> None:
        spec = self.registry.spec(sub.pubsub_name)
        assert spec is not None
        try:
            worker = DeliveryWorker(
                await self.registry.broker(sub.pubsub_name),
                sub,
                self.app_id,
                self._channel_for(sub, kind, channel),
                self.options,
                group=spec.consumer_group,
                start_from=spec.start_from,
                inbound=self.resiliency.component_inbound(sub.pubsub_name, "pubsub"),
            )
            await worker.start()
        except (RoutingError, BrokerError, PubSubConfigError) as exc:
            raise SubscriptionError(f"{_describe(sub, kind)}: {exc}") from exc
        self._workers.append(worker)
        self.running.append((sub, kind))
        log.info(
            "app %r subscribed to %s/%s (%s, group %s)",
            self.app_id, sub.pubsub_name, sub.topic, kind.lower(), worker.group,
        )

    async def stop(self) -> None:
        """Stop every worker, each draining its in-flight deliveries; then the HTTP session."""
        workers, self._workers = self._workers, []
        self.running = []
        results = await asyncio.gather(*(w.stop() for w in workers), return_exceptions=True)
        for worker, result in zip(workers, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("stopping delivery of %s failed: %r", worker.topic, result)
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()
