"""Streaming subscriptions: topics an app consumes over a stream it opened (Dapr's
``SubscribeTopicEventsAlpha1``) rather than on a route of its own.

Each open stream is a :class:`~tether.workers.delivery.DeliveryWorker` in group = app id
with the stream as its :class:`~tether.workers.app_channel.AppChannel`, so retries, dead
letters, expiry and the inbound resiliency policy are those of an HTTP subscription. The
streams show in ``/v1.0/metadata`` as ``STREAMING`` while they are open.
"""

from __future__ import annotations

import logging
from typing import Any

from tether.brokers import BrokerError
from tether.platform import errors
from tether.platform.components import Subscription
from tether.platform.errors import ApiError
from tether.platform.pubsub import PubSubRegistry
from tether.platform.pubsub.registry import PubSubConfigError
from tether.platform.pubsub.routing import RoutingError
from tether.platform.resiliency import Resiliency
from tether.workers.app_channel import AppChannel
from tether.workers.delivery import DeliveryOptions, DeliveryWorker
from tether.workers.subscriptions import metadata_entry

log = logging.getLogger(__name__)

STREAMING = "STREAMING"
#: a stream whose topic the broker would not subscribe to (Dapr answers it as internal)
SUBSCRIBE_FAILED = "ERR_PUBSUB_SUBSCRIBE"


class StreamingSubscriptions:
    """The open streaming subscriptions of one app."""

    def __init__(
        self,
        app_id: str,
        registry: PubSubRegistry,
        *,
        resiliency: Resiliency | None = None,
        options: DeliveryOptions | None = None,
    ) -> None:
        self.app_id = app_id
        self.registry = registry
        self.resiliency = resiliency or Resiliency()
        self.options = options or DeliveryOptions()
        self._open: dict[int, DeliveryWorker] = {}

    def metadata(self) -> list[dict[str, Any]]:
        return [metadata_entry(w.subscription, STREAMING) for w in self._open.values()]

    def check(self, pubsub_name: str, topic: str) -> None:
        """ApiError if the app may not stream ``pubsub_name``/``topic`` (as publish checks)."""
        if not pubsub_name:
            raise ApiError(404, errors.PUBSUB_EMPTY, "pubsub name is empty")
        if not topic:
            raise ApiError(404, errors.TOPIC_EMPTY, "topic is empty in pubsub " + pubsub_name)
        spec = self.registry.spec(pubsub_name)
        if spec is None:
            raise ApiError(404, errors.PUBSUB_NOT_FOUND, f"pubsub {pubsub_name} not found")
        if not spec.topic_scopes.can_subscribe(self.app_id, topic):
            raise ApiError(403, errors.PUBSUB_FORBIDDEN,
                           f"topic {topic} is not allowed for app id {self.app_id}")

    async def open(self, subscription: Subscription, channel: AppChannel) -> DeliveryWorker:
        """Start delivering ``subscription`` through ``channel``; :meth:`close` ends it."""
        self.check(subscription.pubsub_name, subscription.topic)
        spec = self.registry.spec(subscription.pubsub_name)
        assert spec is not None
        try:
            worker = DeliveryWorker(
                await self.registry.broker(subscription.pubsub_name), subscription,
                self.app_id, channel, self.options, group=spec.consumer_group,
                start_from=spec.start_from,
                inbound=self.resiliency.component_inbound(subscription.pubsub_name, "pubsub"),
            )
            await worker.start()
        except (RoutingError, BrokerError, PubSubConfigError) as exc:
            raise ApiError(500, SUBSCRIBE_FAILED,
                           f"error subscribing to {subscription.pubsub_name}/"
                           f"{subscription.topic}: {exc}") from exc
        self._open[id(worker)] = worker
        log.info("app %r streams %s/%s (group %s)", self.app_id, subscription.pubsub_name,
                 subscription.topic, worker.group)
        return worker

    async def close(self, worker: DeliveryWorker) -> None:
        """Stop the worker (its deliveries in flight settle first) and forget it."""
        if self._open.pop(id(worker), None) is None:
            return
        await worker.stop()
        log.info("app %r stopped streaming %s/%s", self.app_id,
                 worker.subscription.pubsub_name, worker.topic)

    async def stop(self) -> None:
        for worker in list(self._open.values()):
            await self.close(worker)
