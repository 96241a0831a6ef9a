"""Job triggers delivered to the app: Dapr's ``POST /job/{name}`` with the job's data.

The app's sidecars consume ``tether.jobs.<app-id>`` in group = app id with a
:class:`~tether.workers.delivery.DeliveryWorker`, so each trigger is taken by one replica;
a trigger's partition key is its job's name, so one job's triggers run one at a time. Its
channel, :class:`JobChannel`:

1. reads the job's record and drops a trigger that no longer matches it (the job was
   deleted or overwritten, or that trigger already fired: a duplicate);
2. POSTs the job's data as JSON to ``/job/{name}`` (no data: an empty body); 2xx is a
   success, anything else (another status, a timeout, a refused connection) a failure;
3. lets the service settle it (:meth:`~tether.platform.jobs.JobsService.settle`): a
   failure the job's policy retries becomes the same trigger again after its interval;
   otherwise the next trigger is published (repeats left, ttl not passed) or the job is
   removed; only then is the trigger acknowledged.

A store or broker failure in steps 1 or 3 is a RETRY of the delivery (backoff, then the
dead-letter topic ``tether.jobs.<app-id>.deadletter``), so nothing is lost to an outage.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from tether.brokers import Broker, BrokerError
from tether.platform.components import Subscription
from tether.platform.errors import ApiError
from tether.platform.events import CloudEvent
from tether.platform.http1 import Http1Pool
from tether.platform.jobs import JobsService, Trigger, jobs_dead_letter_topic
from tether.platform.state.store import StateStoreError
from tether.workers.app_channel import (
    API_TOKEN_HEADER,
    DEFAULT_HOST,
    DEFAULT_TIMEOUT,
    MAX_CONNECTIONS,
    Outcome,
)
from tether.workers.delivery import DeliveryOptions, DeliveryWorker

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/json"


def job_path(name: str) -> str:
    return "/job/" + quote(name, safe="")


class JobChannel:
    """Fires the triggers of ``service``'s jobs on the app at ``host:app_port``."""

    def __init__(self, service: JobsService, app_port: int, *, host: str = DEFAULT_HOST,
                 api_token: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.service = service
        self._pool = Http1Pool(host, app_port, limit=MAX_CONNECTIONS)
        self._api_token = api_token
        self._timeout = timeout
        #: triggers this member delivered to the app (for logs and tests)
        self.fired = 0

    async def close(self) -> None:
        await self._pool.close()

    async def _call_app(self, name: str, data: str | None) -> bool:
        headers = {"Content-Type": CONTENT_TYPE}
        if self._api_token:
            headers[API_TOKEN_HEADER] = self._api_token
        body = b"" if data is None else data.encode()
        try:
            answer = await self._pool.request("POST", job_path(name), body, headers,
                                              timeout=self._timeout)
        except (TimeoutError, OSError, ValueError) as exc:
            log.info("job %r: the call to the app failed: %r", name, exc)
            return False
        if not 200 <= answer.status < 300:
            log.info("job %r: the app answered %s", name, answer.status)
            return False
        return True

    async def deliver(self, path: str, event: CloudEvent) -> Outcome:
        try:
            trigger = Trigger.from_event(event)
        except ValueError as exc:
            log.warning("unreadable job trigger %s, dead-lettered: %s", event.id, exc)
            return Outcome.DROP
        try:
            record = await self.service.current(trigger)
            if record is None:
                log.debug("job %r: trigger %d is stale or a duplicate; dropped",
                          trigger.name, trigger.trigger)
                return Outcome.SUCCESS
            delivered = await self._call_app(trigger.name, record.job.data)
            if delivered:
                self.fired += 1
            await self.service.settle(record, trigger, delivered)
        except (StateStoreError, BrokerError, ApiError) as exc:
            log.warning("job %r: trigger %d could not be handled, will retry: %s",
                        trigger.name, trigger.trigger, exc)
            return Outcome.RETRY
        return Outcome.SUCCESS


class JobTriggers:
    """The delivery worker of the app's job triggers and its channel, started and stopped
    together; starting republishes every job's next trigger (JobsService.resume)."""

    def __init__(self, service: JobsService, broker: Broker, channel: JobChannel,
                 options: DeliveryOptions | None = None) -> None:
        app_id = service.app_id
        subscription = Subscription(
            name=f"jobs-{app_id}", pubsub_name=service.pubsub_name or "",
            topic=service.topic, default_path="/",
            dead_letter_topic=jobs_dead_letter_topic(app_id),
        )
        self.service = service
        self.channel = channel
        # triggers published before any sidecar of the app ever ran are still fired
        self.worker = DeliveryWorker(broker, subscription, app_id, channel, options,
                                     start_from="earliest")

    async def start(self) -> None:
        try:
            await self.worker.start()
            resumed = await self.service.resume()
        except BaseException:
            await self.stop()
            raise
        if resumed:
            log.info("jobs of app %r: %d resumed", self.service.app_id, resumed)

    async def stop(self) -> None:
        try:
            await self.worker.stop()
        finally:
            await self.channel.close()
