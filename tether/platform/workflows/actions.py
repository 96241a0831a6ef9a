"""What the runtime must do after an execution step.

The executor never does I/O: it returns these actions and the runtime carries them out on
the broker (activity topic, delayed publish for timers, orchestration topic for children and
parents). Each action that waits for an answer carries the `task_id` the answer must quote:
the runtime sends back TaskCompleted/TaskFailed, TimerFired, SubOrchestrationCompleted/Failed
with that id to the instance's orchestration topic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tether.platform.workflows.errors import FailureDetails
from tether.platform.workflows.history import (
    ExecutionStarted,
    HistoryEvent,
    ParentInstance,
    RuntimeStatus,
    SubOrchestrationCompleted,
    SubOrchestrationFailed,
    _encode_field,
)


@dataclass(frozen=True, kw_only=True)
class Action:
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):
            out[f.name] = _encode_field(getattr(self, f.name))
        return out


@dataclass(frozen=True, kw_only=True)
class ScheduleTask(Action):
    """Run activity `name` with `input` (JSON text); answer TaskCompleted/TaskFailed(task_id)."""

    task_id: int
    name: str
    input: str | None = None
    app_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class CreateTimer(Action):
    """Deliver TimerFired(task_id, fire_at) to this instance at `fire_at` (durably)."""

    task_id: int
    fire_at: datetime


@dataclass(frozen=True, kw_only=True)
class CreateSubOrchestration(Action):
    """Start child workflow `name` as `instance_id`; its ExecutionStarted carries
    `parent` so that its completion is sent back as SubOrchestrationCompleted/Failed."""

    task_id: int
    name: str
    instance_id: str
    input: str | None = None
    app_id: str | None = None
    parent: ParentInstance

    def start_event(self, now: datetime) -> ExecutionStarted:
        """The event that starts the child instance."""
        return ExecutionStarted(name=self.name, instance_id=self.instance_id, input=self.input,
                                parent=self.parent, timestamp=now)


@dataclass(frozen=True, kw_only=True)
class CompleteOrchestration(Action):
    """The instance finished: COMPLETED (output), FAILED (failure) or TERMINATED (output).

    If `parent` is set, send SubOrchestrationCompleted (COMPLETED) or SubOrchestrationFailed
    (FAILED, TERMINATED) with `parent.task_id` to `parent.instance_id`."""

    status: RuntimeStatus
    output: str | None = None
    failure: FailureDetails | None = None
    parent: ParentInstance | None = None

    def parent_event(self, now: datetime) -> HistoryEvent | None:
        """The event to send to the parent workflow (None for a top-level instance)."""
        if self.parent is None:
            return None
        if self.status == RuntimeStatus.COMPLETED:
            return SubOrchestrationCompleted(task_id=self.parent.task_id, result=self.output,
                                             timestamp=now)
        failure = self.failure or FailureDetails(
            "WorkflowTerminatedError", f"the child workflow ended {self.status.value}")
        return SubOrchestrationFailed(task_id=self.parent.task_id, failure=failure,
                                      timestamp=now)


@dataclass(frozen=True, kw_only=True)
class TerminateOrchestration(Action):
    """Terminate another instance (a running child, on a recursive terminate)."""

    instance_id: str
    output: str | None = None
    recursive: bool = True
