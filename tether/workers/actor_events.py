"""Pub/sub delivered to actors (Dapr's oldest open request, dapr/dapr#501): each event of a
subscription that names an actor type becomes a turn of one actor of it.

A subscription (declarative, or programmatic from ``GET /dapr/subscribe``) with the
metadata ``actorType`` and ``actorIdExpression`` (a CEL expression over ``event``, e.g.
``event.data.userId``) is delivered by its delivery worker as usual (retries, dead
letters, the pub/sub component's inbound policy), but through :class:`ActorEventChannel`:
the route's path is the actor method, and the event (structured CloudEvent JSON) is the
body of an actor call made through the actors block, so it runs on the actor's host as a
turn. Per-actor order holds within a member: deliveries for one actor id take a FIFO lock
in the order they were handed out; publish with ``partitionKey`` = the actor id to keep
one actor's events in one partition (docs/actors.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from tether.platform.actors import ActorService
from tether.platform.errors import ApiError
from tether.platform.events import CloudEvent, InvalidCloudEventError
from tether.platform.events.json_format import CONTENT_TYPE, to_json
from tether.platform.pubsub.routing import RouteEvaluationError, ValueExpression
from tether.workers.app_channel import Outcome, outcome_of

log = logging.getLogger(__name__)

ACTOR_TYPE = "actorType"
ACTOR_ID_EXPRESSION = "actorIdExpression"


def actor_target(metadata: Mapping[str, str]) -> tuple[str, ValueExpression] | None:
    """The actor type and compiled id expression a subscription names; None when it names
    none. RoutingError for an expression that does not compile; ValueError when one of the
    two is missing."""
    actor_type = (metadata.get(ACTOR_TYPE) or "").strip()
    expression = (metadata.get(ACTOR_ID_EXPRESSION) or "").strip()
    if not actor_type and not expression:
        return None
    if not actor_type or not expression:
        raise ValueError(f"a subscription to actors needs both {ACTOR_TYPE} and "
                         f"{ACTOR_ID_EXPRESSION} metadata")
    return actor_type, ValueExpression(expression)


class ActorEventChannel:
    """Delivers a subscription's events as calls of ``actor_type``'s actors."""

    def __init__(self, actors: ActorService, actor_type: str, actor_id: ValueExpression
                 ) -> None:
        self.actors = actors
        self.actor_type = actor_type
        self.actor_id = actor_id
        #: actor id -> its lock and the deliveries holding or waiting for it
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    async def deliver(self, path: str, event: CloudEvent) -> Outcome:
        try:
            actor_id = self.actor_id.value_of(event)
            body = to_json(event)
        except (RouteEvaluationError, InvalidCloudEventError) as exc:
            log.warning("event %s names no actor of %s, dropped: %s", event.id,
                        self.actor_type, exc)
            return Outcome.DROP
        lock, users = self._locks.get(actor_id) or (asyncio.Lock(), 0)
        self._locks[actor_id] = (lock, users + 1)
        try:
            async with lock:  # FIFO: one actor's events in the order they were handed out
                reply = await self.actors.invoke(
                    self.actor_type, actor_id, path.strip("/"), body,
                    [("Content-Type", CONTENT_TYPE)],
                )
        except ApiError as exc:
            log.info("event %s to actor %s/%s failed, will retry: %s", event.id,
                     self.actor_type, actor_id, exc.message)
            return Outcome.RETRY
        finally:
            lock, users = self._locks[actor_id]
            if users <= 1:
                del self._locks[actor_id]
            else:
                self._locks[actor_id] = (lock, users - 1)
        return outcome_of(reply.status, reply.body)

    async def close(self) -> None:
        pass
