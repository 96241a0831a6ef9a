"""The replay executor: history events in, new history and actions out, no I/O.

`OrchestrationState` is one instance's engine state between steps. Built by `replay()` from
stored history (the cold path, after a reload), or kept in memory by the runtime between
batches (the hot path: only the new events are applied, nothing is replayed). Both paths run
the same code, so they give the same results.

One `process(batch)` call is one execution step: it applies the whole batch (e.g. thousands
of TaskCompleted of a fan-in) in O(events), resuming the workflow generator only when the task
it waits for completed, and returns an ExecutionResult: the events to append to history (in
one write) and the actions for the runtime.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import deque
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tether.platform.workflows import payload
from tether.platform.workflows.actions import (
    Action,
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    ScheduleTask,
    TerminateOrchestration,
)
from tether.platform.workflows.authoring import WorkflowRegistry, invoke
from tether.platform.workflows.context import DaprWorkflowContext, describe_step
from tether.platform.workflows.errors import (
    FailureDetails,
    InvalidHistoryError,
    SerializationError,
    TaskFailedError,
)
from tether.platform.workflows.history import (
    EventRaised,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorStarted,
    RuntimeStatus,
    SubOrchestrationCompleted,
    SubOrchestrationCreated,
    SubOrchestrationFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
    utcnow,
)
from tether.platform.workflows.task import CompletableTask, RetryableTask, Task

# a workflow that continues as new without ever waiting would loop forever inside one step
MAX_GENERATIONS_PER_STEP = 1000

_SCHEDULING = (TaskScheduled, TimerCreated, SubOrchestrationCreated)
# events only the executor writes; the runtime never sends them in a batch
_EXECUTOR_ONLY = (OrchestratorStarted, ExecutionCompleted, *_SCHEDULING)


@dataclass
class ExecutionResult:
    """The outcome of one execution step.

    `appended` goes to the stored history in one write: appended to it, or replacing it when
    `history_reset` is True (the instance continued as new). An empty `appended` means the
    batch changed nothing (duplicates, events for a finished instance): no write is needed.
    """

    appended: list[HistoryEvent]
    actions: list[Action]
    status: RuntimeStatus
    name: str | None = None
    input: str | None = None
    output: str | None = None
    failure: FailureDetails | None = None
    custom_status: str | None = None
    history_reset: bool = False
    replayed_events: int = 0  # history events replayed for this step (0 on the hot path)


@dataclass
class _ContinueAsNew:
    input: str | None
    carried: list[HistoryEvent] = field(default_factory=list)


def _scheduling_event(action: Action, now: datetime) -> HistoryEvent:
    if isinstance(action, ScheduleTask):
        return TaskScheduled(task_id=action.task_id, name=action.name, input=action.input,
                             app_id=action.app_id, timestamp=now)
    if isinstance(action, CreateTimer):
        return TimerCreated(task_id=action.task_id, fire_at=action.fire_at, timestamp=now)
    if isinstance(action, CreateSubOrchestration):
        return SubOrchestrationCreated(task_id=action.task_id, name=action.name,
                                       instance_id=action.instance_id, input=action.input,
                                       app_id=action.app_id, timestamp=now)
    raise TypeError(f"not a scheduling action: {action!r}")


class OrchestrationState:
    """One instance's live engine state. Discard it if `process` raises (then reload)."""

    def __init__(self, registry: WorkflowRegistry, instance_id: str) -> None:
        self.registry = registry
        self.instance_id = instance_id
        self._replaying = False
        self._replayed = 0
        self._now = utcnow()
        self._reset_generation()

    def _reset_generation(self) -> None:
        self.started: ExecutionStarted | None = None
        self.ctx: DaprWorkflowContext | None = None
        self._gen: Generator[Any, Any, Any] | None = None
        self._waiting: Task[Any] | None = None
        self.status = RuntimeStatus.PENDING
        self.output: str | None = None
        self.failure: FailureDetails | None = None
        self.done = False
        self._completion_recorded = True
        self._suspended = False
        self._held: deque[HistoryEvent] = deque()
        self._continued: _ContinueAsNew | None = None
        self._restart: ExecutionStarted | None = None
        self._nondeterminism: FailureDetails | None = None
        self._terminations: list[Action] = []

    # --- entry points ---------------------------------------------------------------------

    @classmethod
    def replay(cls, registry: WorkflowRegistry, instance_id: str,
               history: Iterable[HistoryEvent]) -> OrchestrationState:
        """Rebuild the state from stored history, re-running the workflow code (the cold
        path). A deviation of the code from history fails the instance on the next step."""
        state = cls(registry, instance_id)
        state._replaying = True
        count = 0
        for ev in history:
            count += 1
            state._apply(ev)
        state._check_step_matched()
        state._replaying = False
        if state.ctx is not None:
            state.ctx._is_replaying = False
        state._replayed = count
        return state

    def process(self, new_events: Iterable[HistoryEvent],
                now: datetime | None = None) -> ExecutionResult:
        """Apply one batch of new events as one execution step at time `now` (the
        workflow's clock for this step; the runtime passes the wall clock)."""
        now = now or utcnow()
        opened = OrchestratorStarted(timestamp=now)
        appended: list[HistoryEvent] = [opened]
        self._apply(opened)
        if self._nondeterminism is not None and not (self.done and self._completion_recorded):
            self._complete(RuntimeStatus.FAILED, failure=self._nondeterminism)
        reset = False
        generations = 0
        queue = deque(new_events)
        for ev in queue:
            if isinstance(ev, _EXECUTOR_ONLY):
                raise InvalidHistoryError(
                    f"{type(ev).__name__} is written by the executor, not sent to it")
        while queue:
            ev = queue.popleft()
            if self._apply(ev):
                appended.append(ev)
            if self._continued is None and self._restart is None:
                continue
            # continue-as-new (or a restart): a fresh generation takes the rest of the batch
            generations += 1
            cont, restart, started = self._continued, self._restart, self.started
            assert started is not None
            first_task_id = self.ctx.next_task_id if self.ctx else started.first_task_id
            rest = [*self._held, *queue]
            self._reset_generation()
            reset = True
            appended = [opened]
            self._apply(opened)
            if generations > MAX_GENERATIONS_PER_STEP:
                self._fail_unstarted(started, first_task_id, FailureDetails(
                    "ContinueAsNewLoopError",
                    f"the workflow continued as new {generations} times in one step without"
                    " waiting for anything"), appended)
                queue.clear()
                break
            if restart is not None:
                queue = deque([dataclasses.replace(
                    restart, instance_id=self.instance_id, generation=started.generation + 1,
                    first_task_id=first_task_id), *rest])
                continue
            assert cont is not None
            queue = deque([ExecutionStarted(
                name=started.name, instance_id=self.instance_id, input=cont.input,
                parent=started.parent, generation=started.generation + 1,
                first_task_id=first_task_id, timestamp=now), *cont.carried, *rest])
        return self._result(appended, now, reset)

    def recovery_actions(self) -> list[Action]:
        """What a reloaded instance may have to send again: the runtime writes history before
        it sends a step's actions, so a crash in between loses sends, never history. These
        are the actions of every task still open (activities run at least once anyway), and
        the completion notice (to a parent) of a finished instance."""
        if self.done:
            if self.status == RuntimeStatus.CONTINUED_AS_NEW or not self._completion_recorded:
                return []
            return [CompleteOrchestration(
                status=self.status, output=self.output, failure=self.failure,
                parent=self.started.parent if self.started else None)]
        if self.ctx is None:
            return []
        return [a for tid, a in self.ctx.open_actions.items() if tid not in self.ctx.pending]

    @property
    def is_started(self) -> bool:
        return self.started is not None

    # --- result ------------------------------------------------------------------------------

    def _result(self, appended: list[HistoryEvent], now: datetime,
                reset: bool) -> ExecutionResult:
        actions: list[Action] = []
        ctx = self.ctx
        if ctx is not None and ctx.pending:
            for action in ctx.pending.values():
                appended.append(_scheduling_event(action, now))
                actions.append(action)
            ctx.pending.clear()
        actions.extend(self._terminations)
        self._terminations = []
        if self.done and not self._completion_recorded:
            self._completion_recorded = True
            appended.append(ExecutionCompleted(status=self.status, output=self.output,
                                               failure=self.failure, timestamp=now))
            actions.append(CompleteOrchestration(
                status=self.status, output=self.output, failure=self.failure,
                parent=self.started.parent if self.started else None))
        if len(appended) == 1 and not reset:
            appended = []  # only our OrchestratorStarted: nothing happened
        replayed, self._replayed = self._replayed, 0
        return ExecutionResult(
            appended=appended, actions=actions, status=self.status,
            name=self.started.name if self.started else None,
            input=self.started.input if self.started else None,
            output=self.output, failure=self.failure,
            custom_status=ctx.custom_status if ctx else None,
            history_reset=reset, replayed_events=replayed)

    # --- applying one event ------------------------------------------------------------------

    def _apply(self, ev: HistoryEvent) -> bool:
        """Apply one event; True if it belongs in history (False: a duplicate or late
        event, dropped)."""
        if isinstance(ev, OrchestratorStarted):
            if self._replaying:
                self._check_step_matched()
            self._now = ev.timestamp
            if self.ctx is not None:
                self.ctx._now = ev.timestamp
            return True
        if isinstance(ev, ExecutionCompleted):  # replay: history is the authority
            self.status, self.output, self.failure = ev.status, ev.output, ev.failure
            self.done = True
            self._completion_recorded = True
            self._close_generator()
            return True
        if isinstance(ev, _SCHEDULING) and self._replaying and self._nondeterminism is None \
                and not self._completion_recorded:
            self._match(ev)  # also when the replayed code already ended: it did less
            return True
        if isinstance(ev, ExecutionStarted) and self.done and self.started is not None:
            if self._completion_recorded and ev.parent is not None \
                    and ev.parent != self.started.parent:
                self._restart = ev  # a parent retrying a child under the same id: a new run
            return False  # else a redelivered start
        if self.done or self._nondeterminism is not None:
            return False
        if isinstance(ev, ExecutionStarted):
            if self.started is not None:
                return False  # a redelivered start
            self._start(ev)
            return True
        if isinstance(ev, _SCHEDULING):
            self._match(ev)
            return True
        if isinstance(ev, ExecutionTerminated):
            self._terminate(ev)
            return True
        if self.started is None or (self._suspended and not isinstance(ev, ExecutionResumed)):
            if isinstance(ev, ExecutionSuspended) and self._suspended:
                return False
            self._held.append(ev)  # before start or while suspended: applied later, in order
            return True
        if isinstance(ev, ExecutionSuspended):
            self._suspended = True
            self.status = RuntimeStatus.SUSPENDED
            return True
        if isinstance(ev, ExecutionResumed):
            if not self._suspended:
                return False
            self._suspended = False
            self.status = RuntimeStatus.RUNNING
            self._drain_held()
            return True
        return self._deliver(ev)

    def _drain_held(self) -> None:
        while self._held and not self._suspended and not self.done \
                and self._continued is None:
            self._apply(self._held.popleft())

    def _deliver(self, ev: HistoryEvent) -> bool:
        ctx = self.ctx
        assert ctx is not None
        if isinstance(ev, EventRaised):
            ctx.raise_event(ev.name, ev.input)
        elif isinstance(ev, TaskCompleted | SubOrchestrationCompleted | TimerFired):
            task = ctx.open_tasks.pop(ev.task_id, None)
            ctx.open_actions.pop(ev.task_id, None)
            if task is None:
                return False  # a duplicate or a stale completion
            ctx.child_instances.pop(ev.task_id, None)
            if ev.task_id in ctx.retry_timers:
                ctx.retry_timers.discard(ev.task_id)
                assert isinstance(task, RetryableTask)
                ctx.schedule_retry_attempt(task)
            elif isinstance(ev, TimerFired):
                task.complete(None)
            else:
                try:
                    task.complete(payload.decode(ev.result))
                except ValueError as exc:
                    task.fail(TaskFailedError(f"{task.label} returned invalid JSON: {exc}",
                                              FailureDetails("ValueError", str(exc))))
        elif isinstance(ev, TaskFailed | SubOrchestrationFailed):
            task = ctx.open_tasks.pop(ev.task_id, None)
            ctx.open_actions.pop(ev.task_id, None)
            if task is None:
                return False
            ctx.child_instances.pop(ev.task_id, None)
            self._task_failed(ctx, task, ev.task_id, ev.failure)
        else:
            raise InvalidHistoryError(f"unexpected history event {type(ev).__name__}")
        self._resume()
        return True

    def _task_failed(self, ctx: DaprWorkflowContext, task: CompletableTask[Any],
                     task_id: int, failure: FailureDetails) -> None:
        if isinstance(task, RetryableTask):
            fire_at = task.policy.next_retry_at(task.attempt, task.first_attempt_at, self._now)
            if fire_at is not None:
                ctx.schedule_retry_timer(task, fire_at)  # durable: a timer in history
                return
        task.fail(TaskFailedError(
            f"{task.label} (task {task_id}) failed: {failure.error_type}: {failure.message}",
            failure))

    # --- replay matching -----------------------------------------------------------------------

    def _match(self, ev: HistoryEvent) -> None:
        """A scheduling event from history must match what the replayed code scheduled."""
        assert isinstance(ev, TaskScheduled | TimerCreated | SubOrchestrationCreated)
        recorded = describe_step(ev)
        action = self.ctx.pending.pop(ev.task_id, None) if self.ctx else None
        if action is None:
            self._nondeterministic(
                f"task {ev.task_id}: history has {recorded} but the code did not schedule it")
            return
        called = describe_step(action)
        if called != recorded:
            self._nondeterministic(
                f"task {ev.task_id}: history has {recorded} but the code called {called}")

    def _check_step_matched(self) -> None:
        """At a step boundary of replayed history, every scheduled step must be recorded."""
        if self.ctx is None or not self.ctx.pending or self.done \
                or self._nondeterminism is not None:
            return
        task_id, action = next(iter(self.ctx.pending.items()))
        self._nondeterministic(
            f"task {task_id}: the code called {describe_step(action)} but history has no"
            f" task {task_id} at that step")

    def _nondeterministic(self, message: str) -> None:
        name = self.started.name if self.started else "?"
        self._nondeterminism = FailureDetails(
            "NonDeterminismError",
            f"workflow {name!r} ({self.instance_id}) is not deterministic: {message}")
        self._close_generator()

    # --- running the workflow code -----------------------------------------------------------

    def _start(self, ev: ExecutionStarted) -> None:
        self.started = ev
        ctx = DaprWorkflowContext(self.instance_id, ev.name, self._now, ev.first_task_id)
        ctx._is_replaying = self._replaying
        self.ctx = ctx
        self.status = RuntimeStatus.RUNNING
        fn = self.registry.get_workflow(ev.name)
        if fn is None:
            known = ", ".join(sorted(self.registry.workflows)) or "none"
            self._complete(RuntimeStatus.FAILED, failure=FailureDetails(
                "WorkflowNotRegisteredError",
                f"workflow {ev.name!r} is not registered (registered: {known})"))
            return
        try:
            out = invoke(fn, ctx, payload.decode(ev.input))
        except Exception as exc:
            self._complete(RuntimeStatus.FAILED, failure=FailureDetails.from_exception(exc))
            return
        if inspect.isgenerator(out) or inspect.iscoroutine(out):
            # a coroutine that awaits tasks is driven exactly like a generator
            self._gen = out  # type: ignore[assignment]
            self._run(None, None)
        else:
            self._finish_value(out)
        self._drain_held()

    def _resume(self) -> None:
        task = self._waiting
        if task is None or not task.is_complete or self.done:
            return
        self._waiting = None
        if task.is_failed:
            self._run(None, task.get_exception())
        else:
            self._run(task._result, None)

    def _run(self, value: Any, exc: BaseException | None) -> None:
        """Drive the generator until it waits for an incomplete task or ends."""
        gen = self._gen
        assert gen is not None
        while True:
            try:
                yielded = gen.throw(exc) if exc is not None else gen.send(value)
            except StopIteration as stop:
                self._finish_value(stop.value)
                return
            except Exception as error:
                if self._continue_requested():
                    return
                self._complete(RuntimeStatus.FAILED, failure=FailureDetails.from_exception(error))
                return
            if self._continue_requested():
                return
            if not isinstance(yielded, Task):
                self._complete(RuntimeStatus.FAILED, failure=FailureDetails(
                    "TypeError", "a workflow may only yield or await workflow tasks "
                    "(ctx.call_activity, ctx.create_timer, when_all, ...), it "
                    f"{'awaited' if inspect.iscoroutine(gen) else 'yielded'} "
                    f"{type(yielded).__name__}"))
                return
            if not yielded.is_complete:
                self._waiting = yielded
                return
            value, exc = (None, yielded.get_exception()) if yielded.is_failed \
                else (yielded._result, None)

    def _finish_value(self, value: Any) -> None:
        if self._continue_requested():
            return
        try:
            output = payload.encode(value, "the workflow output")
        except SerializationError as exc:
            self._complete(RuntimeStatus.FAILED, failure=FailureDetails.from_exception(exc))
            return
        self._complete(RuntimeStatus.COMPLETED, output=output)

    def _continue_requested(self) -> bool:
        ctx = self.ctx
        if ctx is None or ctx.continue_as_new_request is None:
            return False
        data, save_events = ctx.continue_as_new_request
        carried: list[HistoryEvent] = []
        if save_events:
            for name, queued in ctx.event_buffer.items():
                carried.extend(EventRaised(name=name, input=d, timestamp=self._now)
                               for d in queued)
        self._continued = _ContinueAsNew(data, carried)
        self.status = RuntimeStatus.CONTINUED_AS_NEW
        self.done = True
        self._close_generator()
        return True

    def _complete(self, status: RuntimeStatus, output: str | None = None,
                  failure: FailureDetails | None = None) -> None:
        self.status, self.output, self.failure = status, output, failure
        self.done = True
        self._completion_recorded = False
        self._waiting = None
        if self.ctx is not None:
            self.ctx.pending.clear()  # steps scheduled but not awaited are cancelled
        self._close_generator()

    def _terminate(self, ev: ExecutionTerminated) -> None:
        ctx = self.ctx
        if ctx is not None:
            if ev.recursive and not self._replaying:
                self._terminations = [
                    TerminateOrchestration(instance_id=child, output=ev.output, recursive=True)
                    for child in ctx.child_instances.values()]
        self._complete(RuntimeStatus.TERMINATED, output=ev.output)

    def _fail_unstarted(self, started: ExecutionStarted, first_task_id: int,
                        failure: FailureDetails, appended: list[HistoryEvent]) -> None:
        start = ExecutionStarted(name=started.name, instance_id=self.instance_id,
                                 parent=started.parent, generation=started.generation + 1,
                                 first_task_id=first_task_id, timestamp=self._now)
        self.started = start
        appended.append(start)
        self._complete(RuntimeStatus.FAILED, failure=failure)

    def _close_generator(self) -> None:
        gen, self._gen = self._gen, None
        if gen is not None:
            try:
                gen.close()
            except Exception:  # a misbehaving finally block cannot undo the end
                pass


def execute(registry: WorkflowRegistry, instance_id: str, old_events: Iterable[HistoryEvent],
            new_events: Iterable[HistoryEvent], now: datetime | None = None) -> ExecutionResult:
    """One execution step from stored history: replay `old_events`, apply `new_events`."""
    return OrchestrationState.replay(registry, instance_id, old_events).process(new_events, now)
