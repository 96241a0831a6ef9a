"""The target side of durable async invocation: calls delivered as pub/sub events are.

An async call (docs/invocation.md, "Durable async calls") is an :class:`InvokeRequest`
published on ``tether.invoke.async.<app-id>`` and acknowledged to its caller with 202. The
app's sidecars consume that topic in group = app id with a
:class:`~tether.workers.delivery.DeliveryWorker` (retries with backoff, per-key order,
dead-letter topic ``tether.invoke.async.<app-id>.deadletter``); its channel,
:class:`AsyncInvokeChannel`, makes the call on the app with the headers a synchronous call
has, and says what the answer means:

- 2xx: SUCCESS (acked);
- 408, 429, any other status, a timeout or a failed connection: RETRY (the app or the
  network may recover);
- any other 4xx, a call the access control list denies, an unreadable request: DROP (to
  the dead-letter topic: making it again would fail the same way).
"""

from __future__ import annotations

import logging

from tether.brokers import Broker
from tether.platform import tracing
from tether.platform.components import Subscription
from tether.platform.events import CloudEvent
from tether.platform.http1 import Http1Pool
from tether.platform.invocation import InvokeRequest
from tether.platform.invocation.access import AccessControl
from tether.platform.invocation.messages import async_dead_letter_topic, async_topic
from tether.workers.app_channel import DEFAULT_HOST, DEFAULT_TIMEOUT, MAX_CONNECTIONS, Outcome
from tether.workers.delivery import DeliveryOptions, DeliveryWorker
from tether.workers.invocation import app_headers, denial

log = logging.getLogger(__name__)

#: client errors that say "later", not "never"
RETRIED_CLIENT_ERRORS = frozenset({408, 429})


def outcome_of_status(status: int) -> Outcome:
    """What the app's answer to an async call means for its delivery."""
    if 200 <= status < 300:
        return Outcome.SUCCESS
    if 400 <= status < 500 and status not in RETRIED_CLIENT_ERRORS:
        return Outcome.DROP
    return Outcome.RETRY


class AsyncInvokeChannel:
    """Makes the async calls addressed to ``app_id`` on the app at ``host:app_port``."""

    def __init__(
        self,
        app_id: str,
        app_port: int,
        *,
        host: str = DEFAULT_HOST,
        api_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        access: AccessControl | None = None,
    ) -> None:
        self.app_id = app_id
        self._pool = Http1Pool(host, app_port, limit=MAX_CONNECTIONS)
        self._api_token = api_token
        self._timeout = timeout
        self._access = access

    async def close(self) -> None:
        await self._pool.close()

    async def deliver(self, path: str, event: CloudEvent) -> Outcome:
        # ``path`` is the subscription's route; the call carries its own method path
        try:
            request = InvokeRequest.from_event(event)
        except ValueError as exc:
            log.warning("unreadable async call %s, dead-lettered: %s", event.id, exc)
            return Outcome.DROP
        if denial(self._access, request) is not None:
            return Outcome.DROP
        headers = app_headers(request, self.app_id, self._api_token)
        trace = tracing.outgoing()
        if trace is not None:  # the delivery span's context, in place of the caller's
            headers.update(trace)
        target = "/" + request.path.lstrip("/")
        try:
            answer = await self._pool.request(
                request.verb, target, request.body, headers, timeout=self._timeout
            )
        except ValueError as exc:  # an unsendable header: it would fail every time
            log.warning("async call %s to %s cannot be made, dead-lettered: %s",
                        request.id, target, exc)
            return Outcome.DROP
        except (TimeoutError, OSError) as exc:
            log.info("async call %s to %s failed, will retry: %r", request.id, target, exc)
            return Outcome.RETRY
        outcome = outcome_of_status(answer.status)
        if outcome is not Outcome.SUCCESS:
            log.info("app answered %s to async call %s at %s: %s", answer.status, request.id,
                     target, outcome.name)
        return outcome


class AsyncInvocations:
    """The delivery worker of ``app_id``'s async calls and its channel, started and stopped
    together."""

    def __init__(
        self, broker: Broker, pubsub: str, channel: AsyncInvokeChannel,
        options: DeliveryOptions | None = None,
    ) -> None:
        app_id = channel.app_id
        subscription = Subscription(
            name=f"invoke-async-{app_id}", pubsub_name=pubsub, topic=async_topic(app_id),
            default_path="/", dead_letter_topic=async_dead_letter_topic(app_id),
        )
        self._channel = channel
        # a call accepted before any sidecar of the app ever ran is still made
        self.worker = DeliveryWorker(broker, subscription, app_id, channel, options,
                                     start_from="earliest")

    async def start(self) -> None:
        try:
            await self.worker.start()
        except BaseException:
            await self._channel.close()
            raise

    async def stop(self) -> None:
        try:
            await self.worker.stop()
        finally:
            await self._channel.close()
