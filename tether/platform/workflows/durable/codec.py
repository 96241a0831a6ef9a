"""The runtime's CloudEvents: orchestration events (a history event for one instance) and
activity tasks (a ScheduleTask to run)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.platform import tracing
from tether.platform.events import CloudEvent
from tether.platform.workflows.actions import ScheduleTask
from tether.platform.workflows.errors import InvalidHistoryError
from tether.platform.workflows.history import HistoryEvent, event_from_dict, utcnow

SOURCE = "tether/workflow"
ORCHESTRATION_EVENT = "io.tether.workflow.event"
ACTIVITY_TASK = "io.tether.workflow.activity"


def orchestration_event(instance_id: str, event: HistoryEvent,
                        event_id: str | None = None,
                        trace: Mapping[str, str] | None = None) -> CloudEvent:
    """A history event for ``instance_id``, keyed by it. A deterministic ``event_id`` (for
    events derived from a stored step) makes a re-sent copy droppable by id. ``trace``: the
    W3C context of the span that sent it (a start: what the instance's spans continue)."""
    return CloudEvent(
        type=ORCHESTRATION_EVENT, source=SOURCE, id=event_id or uuid.uuid4().hex,
        time=utcnow(), subject=instance_id,
        data={"instance": instance_id, "event": event.to_dict()},
        extensions={"partitionkey": instance_id, **(trace or {})},
    )


def trace_of(event: CloudEvent) -> dict[str, str]:
    """The W3C trace context an event carries (empty: none)."""
    return {h: v for h in tracing.TRACE_HEADERS if (v := event.extensions.get(h))}


@dataclass(frozen=True, slots=True)
class Inbound:
    """One orchestration event taken off the topic."""

    id: str
    instance_id: str
    event: HistoryEvent
    #: the sender's trace context (a start event: the new instance's)
    trace: dict[str, str] = field(default_factory=dict)


def read_orchestration_event(event: CloudEvent) -> Inbound:
    """Raises InvalidHistoryError for anything that is not one of ours."""
    data = event.data
    if event.type != ORCHESTRATION_EVENT or not isinstance(data, dict) \
            or not isinstance(data.get("instance"), str) or not isinstance(data.get("event"), dict):
        raise InvalidHistoryError(f"not a workflow orchestration event: {event.type!r}")
    return Inbound(event.id, data["instance"], event_from_dict(data["event"]), trace_of(event))


def activity_task(instance_id: str, task: ScheduleTask, event_id: str,
                  trace: Mapping[str, str] | None = None) -> CloudEvent:
    """``trace``: the context of the step that scheduled it (its span's parent)."""
    data: dict[str, Any] = {"instance": instance_id, "task_id": task.task_id,
                            "name": task.name, "input": task.input, "app_id": task.app_id}
    return CloudEvent(
        type=ACTIVITY_TASK, source=SOURCE, id=event_id, time=utcnow(), subject=instance_id,
        data=data,
        extensions={"partitionkey": f"{instance_id}#{task.task_id}", **(trace or {})},
    )


def read_activity_task(event: CloudEvent) -> tuple[str, ScheduleTask]:
    data = event.data
    try:
        if event.type != ACTIVITY_TASK or not isinstance(data, dict):
            raise TypeError(event.type)
        task = ScheduleTask(task_id=int(data["task_id"]), name=str(data["name"]),
                            input=data.get("input"), app_id=data.get("app_id"))
        return str(data["instance"]), task
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidHistoryError(f"not a workflow activity task: {exc}") from exc
