"""The Jobs API for any front end (Dapr's ScheduleJob, GetJob, DeleteJob, ListJobs), and
the two steps of firing a trigger that the jobs worker calls around its call to the app.

Definitions live in the app's state store (the one marked ``actorStateStore: "true"``,
else the first; :mod:`.records`); each trigger is a delayed event on the app's pub/sub
(:func:`~tether.platform.pubsub.scheduled.publish_at` to ``tether.jobs.<app-id>``), so a
trigger survives restarts and SIGKILL like any delayed publish, and is taken by one
replica of the app (group = app id). A job is written before its first trigger is
published; a sidecar starting republishes the due-next trigger of every job
(:meth:`JobsService.resume`), which covers a crash between the two: a duplicate is
dropped because it no longer matches the record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from tether.brokers import Broker, BrokerError
from tether.platform import errors
from tether.platform.blocks import BlockContext
from tether.platform.components import Component
from tether.platform.errors import ApiError
from tether.platform.events import utc_now
from tether.platform.jobs.messages import Trigger, jobs_topic
from tether.platform.jobs.model import Job, Timeline, check_name
from tether.platform.jobs.records import JobRecords, Record, new_generation
from tether.platform.pubsub import PubSubRegistry, runtime_pubsub
from tether.platform.pubsub.scheduled import publish_at
from tether.platform.state.registry import StateStoreSpec, state_store_spec
from tether.platform.state.store import ETagMismatchError, StateStore, StateStoreError

log = logging.getLogger(__name__)


def _actor_store(component: Component) -> bool:
    return (component.value("actorStateStore") or "").strip().lower() == "true"


def jobs_store(components: Sequence[Component]) -> Component | None:
    """Where job definitions live: the state store marked ``actorStateStore: "true"`` (as
    Dapr keeps reminders with actor state), else the app's first state store."""
    states = [c for c in components if c.block == "state"]
    marked = [c for c in states if _actor_store(c)]
    chosen = marked or states
    return chosen[0] if chosen else None


class JobsService:
    """``app_id``'s jobs: its store opened with the sidecar, its triggers on ``pubsub_name``."""

    def __init__(self, app_id: str, store: StateStoreSpec | None, pubsub: PubSubRegistry,
                 pubsub_name: str | None) -> None:
        self.app_id = app_id
        self.topic = jobs_topic(app_id)
        self.pubsub_name = pubsub_name
        self._spec = store
        self._pubsub = pubsub
        self._store: StateStore | None = None
        self._records: JobRecords | None = None

    @classmethod
    def from_context(cls, context: BlockContext) -> JobsService:
        """A bad state component raises BlockConfigError; an app with no state store or no
        pub/sub gets a service whose calls answer 500 saying so."""
        component = jobs_store(context.components)
        spec = state_store_spec(component) if component is not None else None
        return cls(context.app_id, spec, context.pubsub, runtime_pubsub(context.pubsub))

    @property
    def usable(self) -> bool:
        return self._spec is not None and self.pubsub_name is not None

    async def start(self) -> None:
        if self.usable and self._spec is not None:
            self._store = await self._spec.opener()
            self._records = JobRecords(self._store, self.app_id)

    async def close(self) -> None:
        store, self._store, self._records = self._store, None, None
        if store is not None:
            await store.close()

    # --- what the worker needs ------------------------------------------------------------
    @property
    def records(self) -> JobRecords:
        if self._records is None:
            raise ApiError(500, errors.SCHEDULER_SCHEDULE_JOB,
                           f"the Jobs API needs a state store and a pub/sub component "
                           f"(app {self.app_id!r} lacks one)")
        return self._records

    async def broker(self) -> Broker:
        if self.pubsub_name is None:
            raise ApiError(500, errors.SCHEDULER_SCHEDULE_JOB,
                           f"the Jobs API needs a pub/sub component (app {self.app_id!r} "
                           "has none)")
        return await self._pubsub.broker(self.pubsub_name)

    async def publish(self, trigger: Trigger) -> None:
        """Put ``trigger`` on the jobs topic, held until due."""
        await publish_at(await self.broker(), self.topic, [trigger.to_event(self.app_id)],
                         [trigger.due])

    async def current(self, trigger: Trigger) -> Record | None:
        """The job's record if ``trigger`` is the one it waits for; None for a trigger of a
        deleted or overwritten job, or one already fired (a duplicate)."""
        record = await self.records.get(trigger.name)
        if (record is None or record.generation != trigger.generation
                or record.next_trigger != trigger.trigger):
            return None
        return record

    async def settle(self, record: Record, trigger: Trigger, delivered: bool) -> None:
        """After the call to the app: retry under the failure policy, else move the job on
        to its next trigger (or remove it when it has none). The next trigger is published
        before the record moves: a crash between the two fires this trigger again (at least
        once) and the extra copy of the next one is dropped as a duplicate."""
        now = utc_now()
        policy = record.job.policy
        if not delivered and policy.retries(trigger.attempt):
            await self.publish(replace(trigger, attempt=trigger.attempt + 1,
                                       due=now + timedelta(seconds=policy.interval)))
            return
        if not delivered:
            log.warning("job %r: trigger %d failed %d time(s); its failure policy gives up",
                        trigger.name, trigger.trigger, trigger.attempt + 1)
        count = trigger.trigger + 1
        following = record.timeline.after(count, trigger.due, now)
        if following is None:
            try:
                await self.records.delete(trigger.name, record.etag)
                await self.records.unindex(trigger.name)
            except ETagMismatchError:  # overwritten meanwhile: the new job stays
                pass
            log.info("job %r: done after %d trigger(s)", trigger.name, count)
            return
        await self.publish(Trigger(trigger.name, record.generation, count, following))
        try:
            await self.records.put(record.advanced(count, following))
        except ETagMismatchError:  # deleted or overwritten meanwhile: that trigger is stale
            pass

    async def resume(self) -> int:
        """Republish every job's due-next trigger (a sidecar starting); how many."""
        records = await self.records.all()
        for record in records:
            await self.publish(Trigger(record.job.name, record.generation,
                                       record.next_trigger, record.next_time))
        return len(records)

    # --- the API --------------------------------------------------------------------------
    async def schedule(self, job: Job, overwrite: bool = False) -> None:
        """Store ``job`` and publish its first trigger; 409 if it exists and ``overwrite``
        is false, 400 for a schedule that cannot be used."""
        now = utc_now()
        timeline = Timeline.of(job, now)
        timeline.check(now)
        records = self.records
        try:
            existing = await records.get(job.name)
            if existing is not None and not overwrite:
                raise ApiError(409, errors.SCHEDULER_SCHEDULE_JOB,
                               f"failed to schedule job due to: job {job.name!r} already "
                               "exists (set overwrite to replace it)")
            record = Record(job, new_generation(), now, 0, timeline.first,
                            None if existing is None else existing.etag)
            record = await records.put(record, create=existing is None)
            await records.index(job.name)
        except ETagMismatchError:
            raise ApiError(409, errors.SCHEDULER_SCHEDULE_JOB,
                           f"failed to schedule job due to: job {job.name!r} was scheduled "
                           "concurrently") from None
        except StateStoreError as exc:
            raise ApiError(500, errors.SCHEDULER_SCHEDULE_JOB,
                           f"failed to schedule job due to: {exc}") from exc
        try:
            await self.publish(Trigger(job.name, record.generation, 0, timeline.first))
        except BrokerError as exc:
            try:  # nothing would ever fire it
                await records.delete(job.name, record.etag)
            except StateStoreError:
                log.warning("job %r: its record stays without a trigger until the next "
                            "sidecar start", job.name)
            raise ApiError(500, errors.SCHEDULER_SCHEDULE_JOB,
                           f"failed to schedule job due to: {exc}") from exc

    async def get(self, name: str) -> Job:
        name = check_name(name)
        try:
            record = await self.records.get(name)
        except StateStoreError as exc:
            raise ApiError(500, errors.SCHEDULER_GET_JOB, f"failed to get job due to: {exc}"
                           ) from exc
        if record is None:
            raise ApiError(404, errors.SCHEDULER_GET_JOB,
                           f"failed to get job due to: job {name!r} not found")
        return record.job

    async def delete(self, name: str) -> None:
        """Remove the job (an unknown one is fine, as in Dapr); its pending triggers are
        dropped when they come."""
        name = check_name(name)
        try:
            await self.records.delete(name)
            await self.records.unindex(name)
        except StateStoreError as exc:
            raise ApiError(500, errors.SCHEDULER_DELETE_JOB,
                           f"failed to delete job due to: {exc}") from exc

    async def list(self) -> list[Record]:
        """Every job with the trigger due next, by name."""
        try:
            records = await self.records.all()
        except StateStoreError as exc:
            raise ApiError(500, errors.SCHEDULER_LIST_JOBS, f"failed to list jobs due to: {exc}"
                           ) from exc
        return sorted(records, key=lambda r: r.job.name)
