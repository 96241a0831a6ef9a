"""Running one activity: WorkflowActivityContext and run_activity (ScheduleTask in, the
TaskCompleted or TaskFailed to send back to the instance out)."""

from __future__ import annotations

import asyncio
import inspect
from datetime import datetime
from typing import Any

from tether.platform.workflows import payload
from tether.platform.workflows.actions import ScheduleTask
from tether.platform.workflows.authoring import WorkflowRegistry, invoke
from tether.platform.workflows.errors import (
    FailureDetails,
    WorkflowNotRegisteredError,
)
from tether.platform.workflows.history import TaskCompleted, TaskFailed, utcnow


class WorkflowActivityContext:
    """The `ctx` of an activity function, with Dapr's names."""

    def __init__(self, workflow_id: str, task_id: int, name: str = "") -> None:
        self._workflow_id = workflow_id
        self._task_id = task_id
        self._name = name

    @property
    def workflow_id(self) -> str:
        """The instance id of the workflow that scheduled this activity."""
        return self._workflow_id

    @property
    def task_id(self) -> int:
        return self._task_id

    @property
    def activity_name(self) -> str:
        return self._name


async def run_activity(registry: WorkflowRegistry, instance_id: str, task: ScheduleTask, *,
                       sync_in_thread: bool = True,
                       now: datetime | None = None) -> TaskCompleted | TaskFailed:
    """Run the activity `task` names; any exception becomes a TaskFailed (never raised).

    Sync activities run in a worker thread (sync_in_thread) so they do not block the event
    loop; async ones are awaited."""
    def failed(details: FailureDetails) -> TaskFailed:
        return TaskFailed(task_id=task.task_id, failure=details, timestamp=now or utcnow())

    fn = registry.get_activity(task.name)
    if fn is None:
        known = ", ".join(sorted(registry.activities)) or "none"
        return failed(FailureDetails(WorkflowNotRegisteredError.__name__,
                                     f"activity {task.name!r} is not registered"
                                     f" (registered: {known})"))
    ctx = WorkflowActivityContext(instance_id, task.task_id, task.name)
    try:
        data = payload.decode(task.input)
        result: Any
        if inspect.iscoroutinefunction(fn):
            result = await invoke(fn, ctx, data)
        elif sync_in_thread:
            result = await asyncio.to_thread(invoke, fn, ctx, data)
        else:
            result = invoke(fn, ctx, data)
        if inspect.isawaitable(result):
            result = await result
        encoded = payload.encode(result, f"the output of activity {task.name!r}")
    except Exception as exc:
        return failed(FailureDetails.from_exception(exc))
    return TaskCompleted(task_id=task.task_id, result=encoded, timestamp=now or utcnow())
