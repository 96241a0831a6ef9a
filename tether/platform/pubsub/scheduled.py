"""Delayed publish: putting an event on a component's schedule topic, and taking it off.

A delayed event is not written to its topic. It goes to the component's schedule topic
(:data:`SCHEDULE_TOPIC`) as the same CloudEvent plus three extensions: when it is due, the
topic it is for, and its own partition key (if it had one). Its partition key there is a
fresh random one, so no two held events ever wait behind each other. The scheduler
(:mod:`tether.workers.scheduler`) holds each one until due, then publishes the original
event, extensions removed, to its topic.

Service Bus schedules messages natively, so there the event is sent straight to its topic
with a scheduled enqueue time and no scheduler is involved (docs/delivery.md).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tether.brokers import Broker
from tether.platform.errors import TetherError
from tether.platform.events import CloudEvent, format_time
from tether.platform.events.event import parse_time

SCHEDULE_TOPIC = "tether.scheduled"
#: the consumer group every scheduler of a component shares, whatever app runs it
SCHEDULER_GROUP = "tether-scheduler"
DUE = "tetherdue"
TARGET = "tethertopic"
KEY = "tetherkey"
SCHEDULE_EXTENSIONS = (DUE, TARGET, KEY)


class ScheduleError(TetherError, ValueError):
    """A record on the schedule topic that is not a scheduled event (it is dead-lettered)."""


@dataclass(frozen=True, slots=True)
class Scheduled:
    """One event taken off the schedule topic: the original event, where and when."""

    event: CloudEvent
    topic: str
    due: datetime


def wrap(event: CloudEvent, topic: str, due: datetime) -> CloudEvent:
    """The record for the schedule topic."""
    extensions: dict[str, str] = {
        DUE: format_time(due.astimezone(UTC)),
        TARGET: topic,
        "partitionkey": uuid.uuid4().hex,
    }
    if event.partitionkey is not None:
        extensions[KEY] = event.partitionkey
    return event.with_extensions(**extensions)


def unwrap(record: CloudEvent) -> Scheduled:
    """The original event back (same id, attributes, data and partition key)."""
    extensions = dict(record.extensions)
    due, topic = extensions.get(DUE), extensions.get(TARGET)
    if not isinstance(due, str) or not isinstance(topic, str) or not topic:
        raise ScheduleError(f"event {record.id} has no {DUE}/{TARGET} extensions")
    try:
        when = parse_time(due)
    except ValueError as exc:
        raise ScheduleError(f"event {record.id}: {exc}") from exc
    key = extensions.pop(KEY, None)
    for name in SCHEDULE_EXTENSIONS:
        extensions.pop(name, None)
    extensions.pop("partitionkey", None)
    if key is not None:
        extensions["partitionkey"] = key
    original = record.replace(extensions=extensions)
    return Scheduled(original, topic, when)


def schedules_natively(broker: Broker) -> bool:
    """Whether the backend holds scheduled messages itself (Service Bus)."""
    return broker.schedules_natively


async def publish_at(
    broker: Broker,
    topic: str,
    events: Sequence[CloudEvent],
    due: Sequence[datetime | None],
    *,
    now: datetime | None = None,
    schedule_topic: str = SCHEDULE_TOPIC,
) -> None:
    """Publish ``events`` to ``topic``, each no earlier than its due time (None or a time
    already past: now). Immediate events are one batch, scheduled ones another.
    ``schedule_topic`` must be the one the component's schedulers consume (tests isolate
    themselves with their own)."""
    now = now or datetime.now(UTC)
    immediate = [e for e, d in zip(events, due, strict=True) if d is None or d <= now]
    later = [(e, d) for e, d in zip(events, due, strict=True) if d is not None and d > now]
    if later:
        if broker.schedules_natively:
            await broker.publish_scheduled(topic, later)
        else:
            await broker.publish_batch(schedule_topic, [wrap(e, topic, d) for e, d in later])
    if immediate:
        await broker.publish_batch(topic, immediate)
