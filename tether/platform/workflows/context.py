"""DaprWorkflowContext: what a workflow function sees, and the per-instance step state behind it.

The context numbers the steps the code schedules (task ids), keeps the actions not yet
matched against history (`pending`), the open tasks by id, and the external events waiting
for a waiter (FIFO per name). It never does I/O; the executor feeds it history events."""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from tether.platform.workflows import payload
from tether.platform.workflows.actions import (
    Action,
    CreateSubOrchestration,
    CreateTimer,
    ScheduleTask,
)
from tether.platform.workflows.authoring import name_of
from tether.platform.workflows.history import (
    HistoryEvent,
    ParentInstance,
    SubOrchestrationCreated,
    TaskScheduled,
    _dt_from_str,
    _dt_to_str,
)
from tether.platform.workflows.retry import RetryPolicy
from tether.platform.workflows.task import (
    CompletableTask,
    RetryableTask,
    Task,
    WhenAllTask,
    when_all,
    when_any,
)


def describe_step(step: Action | HistoryEvent) -> str:
    """How a step is named in errors: "activity 'charge'", "a timer", "child workflow 'x'".
    One rule for the code's action and history's record of it, so that replay can compare
    the two names."""
    if isinstance(step, ScheduleTask | TaskScheduled):
        return f"activity {step.name!r}"
    if isinstance(step, CreateSubOrchestration | SubOrchestrationCreated):
        return f"child workflow {step.name!r}"
    return "a timer"


class DaprWorkflowContext:
    """The `ctx` of a workflow function, with Dapr's names."""

    def __init__(self, instance_id: str, workflow_name: str, now: datetime,
                 first_task_id: int = 0) -> None:
        self._instance_id = instance_id
        self._workflow_name = workflow_name
        self._now = now
        self._is_replaying = False
        self._next_task_id = first_task_id
        # actions scheduled by the code and not yet matched to history / emitted
        self.pending: dict[int, Action] = {}
        # open durable tasks by task id (a retry timer maps to its RetryableTask)
        self.open_tasks: dict[int, CompletableTask[Any]] = {}
        # the action of each open task, for re-sending after a crash (recovery_actions)
        self.open_actions: dict[int, Action] = {}
        self.retry_timers: set[int] = set()
        self.event_waiters: dict[str, deque[CompletableTask[Any]]] = {}
        self.event_buffer: dict[str, deque[str | None]] = {}
        self.custom_status: str | None = None
        self.continue_as_new_request: tuple[str | None, bool] | None = None
        self.child_instances: dict[int, str] = {}
        self._guid_counter = 0

    # --- Dapr's read-only properties ------------------------------------------------------

    @property
    def instance_id(self) -> str:
        return self._instance_id

    @property
    def workflow_name(self) -> str:
        return self._workflow_name

    @property
    def current_utc_datetime(self) -> datetime:
        """The time of the current step, from history: the same on every replay."""
        return self._now

    @property
    def is_replaying(self) -> bool:
        return self._is_replaying

    # --- scheduling ------------------------------------------------------------------------

    def call_activity(self, activity: Callable[..., Any] | str, *, input: Any = None,
                      retry_policy: RetryPolicy | None = None,
                      app_id: str | None = None) -> Task[Any]:
        name = name_of(activity)
        data = payload.encode(input, f"the input of activity {name!r}")
        task: CompletableTask[Any] = (
            RetryableTask(retry_policy, self._now) if retry_policy else CompletableTask())
        task_id = self._add(task, lambda tid: ScheduleTask(
            task_id=tid, name=name, input=data, app_id=app_id))
        if isinstance(task, RetryableTask):
            task.template = self.pending[task_id]  # repeated on each retry attempt
        return task

    def call_child_workflow(self, workflow: Callable[..., Any] | str, *, input: Any = None,
                            instance_id: str | None = None,
                            retry_policy: RetryPolicy | None = None,
                            app_id: str | None = None) -> Task[Any]:
        name = name_of(workflow)
        data = payload.encode(input, f"the input of child workflow {name!r}")
        task: CompletableTask[Any] = (
            RetryableTask(retry_policy, self._now) if retry_policy else CompletableTask())
        parent_name = self._workflow_name

        def build(tid: int) -> Action:
            # a deterministic child id when none is given, unique per task id
            child_id = instance_id or f"{self._instance_id}:{tid:04x}"
            return CreateSubOrchestration(
                task_id=tid, name=name, instance_id=child_id, input=data, app_id=app_id,
                parent=ParentInstance(parent_name, self._instance_id, tid))

        task_id = self._add(task, build)
        if isinstance(task, RetryableTask):
            task.template = self.pending[task_id]  # repeated on each retry attempt
        return task

    def create_timer(self, fire_at: datetime | timedelta | float) -> Task[None]:
        """A timer due at `fire_at`, or after a timedelta (or seconds) from the step's time."""
        if isinstance(fire_at, int | float):
            fire_at = timedelta(seconds=float(fire_at))
        when = self._now + fire_at if isinstance(fire_at, timedelta) else fire_at
        when = _dt_from_str(_dt_to_str(when))  # naive -> UTC, as stored
        task: CompletableTask[None] = CompletableTask()
        self._add(task, lambda tid: CreateTimer(task_id=tid, fire_at=when))
        return task

    def wait_for_external_event(self, name: str) -> Task[Any]:
        """Completes with the next event of that name (case-insensitive); events raised
        before anyone waits are buffered FIFO per name."""
        key = name.lower()
        task: CompletableTask[Any] = CompletableTask()
        buffered = self.event_buffer.get(key)
        if buffered:
            task.complete(payload.decode(buffered.popleft()))
        else:
            self.event_waiters.setdefault(key, deque()).append(task)
        return task

    def continue_as_new(self, new_input: Any, *, save_events: bool = False) -> None:
        """Restart this instance with `new_input` and a fresh history once the current step
        ends; with save_events, events buffered but not yet waited for are carried over."""
        data = payload.encode(new_input, "the continue_as_new input")
        self.continue_as_new_request = (data, save_events)

    def sleep(self, duration: datetime | timedelta | float) -> Task[None]:
        """The async context's name for create_timer."""
        return self.create_timer(duration)

    def when_all(self, tasks: Sequence[Task[Any]]) -> Task[list[Any]]:
        return when_all(tasks)

    def gather(self, *tasks: Task[Any], return_exceptions: bool = False) -> Task[list[Any]]:
        """asyncio.gather's shape over workflow tasks (failures in the list if asked)."""
        return WhenAllTask(tasks, return_exceptions=return_exceptions)

    # deterministic stand-ins for the clock, uuid4 and random (the same on every replay)

    def now(self) -> datetime:
        return self._now

    def new_guid(self) -> uuid.UUID:
        """A UUID derived from the instance, the step's time and a counter: the same on
        replay, different for each call."""
        self._guid_counter += 1
        return uuid.uuid5(uuid.NAMESPACE_URL, f"{self._instance_id}/{self._now.isoformat()}/"
                                              f"{self._guid_counter}")

    def uuid4(self) -> uuid.UUID:
        return self.new_guid()

    def random(self) -> random.Random:
        """A Random seeded from the instance and the step's time."""
        return random.Random(self.new_guid().int)

    @property
    def is_suspended(self) -> bool:
        return False  # a suspended instance's code does not run

    def when_any(self, tasks: Sequence[Task[Any]]) -> Task[Task[Any]]:
        return when_any(tasks)

    def set_custom_status(self, custom_status: Any) -> None:
        self.custom_status = payload.encode(custom_status, "the custom status")

    # --- used by the executor -----------------------------------------------------------------

    def _add(self, task: CompletableTask[Any], build: Callable[[int], Action]) -> int:
        task_id = self._next_task_id
        self._next_task_id += 1
        action = build(task_id)
        task.label = describe_step(action)
        self.pending[task_id] = action
        self.open_tasks[task_id] = task
        self.open_actions[task_id] = action
        if isinstance(action, CreateSubOrchestration):
            self.child_instances[task_id] = action.instance_id
        return task_id

    def schedule_retry_timer(self, task: RetryableTask[Any], fire_at: datetime) -> None:
        task_id = self._next_task_id
        self._next_task_id += 1
        self.pending[task_id] = self.open_actions[task_id] = CreateTimer(
            task_id=task_id, fire_at=fire_at)
        self.open_tasks[task_id] = task
        self.retry_timers.add(task_id)

    def schedule_retry_attempt(self, task: RetryableTask[Any]) -> None:
        """Repeat the task's action under a fresh task id."""
        template = task.template
        task.attempt += 1
        if isinstance(template, ScheduleTask):
            self._add(task, lambda tid: ScheduleTask(
                task_id=tid, name=template.name, input=template.input, app_id=template.app_id))
        elif isinstance(template, CreateSubOrchestration):
            # a generated child id follows the new task id; a chosen one is reused
            generated = template.instance_id == f"{self._instance_id}:{template.task_id:04x}"
            self._add(task, lambda tid: CreateSubOrchestration(
                task_id=tid, name=template.name,
                instance_id=f"{self._instance_id}:{tid:04x}" if generated
                else template.instance_id,
                input=template.input, app_id=template.app_id,
                parent=ParentInstance(template.parent.name, template.parent.instance_id, tid)))

    def raise_event(self, name: str, data: str | None) -> None:
        key = name.lower()
        waiters = self.event_waiters.get(key)
        if waiters:
            waiters.popleft().complete(payload.decode(data))
        else:
            self.event_buffer.setdefault(key, deque()).append(data)

    @property
    def next_task_id(self) -> int:
        return self._next_task_id
