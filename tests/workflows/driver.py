"""An in-process test driver for the workflow engine: no broker, no store.

It plays the runtime's part with plain lists: an inbox of new events per instance (drained
in one batch, or `batch_size` at a time), activities run inline, timers fired at once in
due order with a fake clock jumped to their due time. `hot=True` keeps each instance's
OrchestrationState between steps (the runtime's hot path); `hot=False` replays stored history
on every step (the cold path after a reload)."""

from __future__ import annotations

import asyncio
import heapq
import json
import random
from collections import deque
from datetime import UTC, datetime, timedelta
from typing import Any

from tether.platform.workflows.actions import (
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    ScheduleTask,
    TerminateOrchestration,
)
from tether.platform.workflows.activity import run_activity
from tether.platform.workflows.authoring import WorkflowRegistry
from tether.platform.workflows.executor import ExecutionResult, OrchestrationState
from tether.platform.workflows.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    RuntimeStatus,
    TimerFired,
    history_from_list,
    history_to_list,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Driver:
    def __init__(self, registry: WorkflowRegistry, *, hot: bool = True,
                 batch_size: int | None = None, run_activities: bool = True,
                 shuffle: random.Random | None = None) -> None:
        self.registry = registry
        self.hot = hot
        self.batch_size = batch_size
        self.run_activities = run_activities
        self.shuffle = shuffle  # deliver activity completions in a random order
        self.clock = T0
        self.inbox: dict[str, list[HistoryEvent]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}  # stored as JSON, like a store
        self.states: dict[str, OrchestrationState] = {}
        self.last: dict[str, ExecutionResult] = {}
        self.activities: deque[tuple[str, ScheduleTask]] = deque()
        self.timers: list[tuple[datetime, int, str, int]] = []
        self.timer_log: list[tuple[str, int, datetime]] = []  # (instance, task id, fire_at)
        self.steps: dict[str, int] = {}
        self.replayed_events = 0
        self._seq = 0
        self._loop = asyncio.new_event_loop()

    # --- client side ---------------------------------------------------------------------

    def start(self, name: str, input: Any = None, instance_id: str = "wf-1") -> str:
        data = None if input is None else json.dumps(input)
        self.send(instance_id, ExecutionStarted(name=name, instance_id=instance_id, input=data,
                                                timestamp=self.clock))
        return instance_id

    def raise_event(self, instance_id: str, name: str, data: Any = None) -> None:
        self.send(instance_id, EventRaised(name=name, input=json.dumps(data),
                                           timestamp=self.clock))

    def terminate(self, instance_id: str, output: Any = None, recursive: bool = True) -> None:
        self.send(instance_id, ExecutionTerminated(
            output=None if output is None else json.dumps(output), recursive=recursive,
            timestamp=self.clock))

    def suspend(self, instance_id: str) -> None:
        self.send(instance_id, ExecutionSuspended(timestamp=self.clock))

    def resume(self, instance_id: str) -> None:
        self.send(instance_id, ExecutionResumed(timestamp=self.clock))

    def send(self, instance_id: str, event: HistoryEvent) -> None:
        self.inbox.setdefault(instance_id, []).append(event)

    def status(self, instance_id: str) -> RuntimeStatus:
        return self.last[instance_id].status

    def output(self, instance_id: str) -> Any:
        out = self.last[instance_id].output
        return None if out is None else json.loads(out)

    def events(self, instance_id: str) -> list[HistoryEvent]:
        return history_from_list(self.history.get(instance_id, []))

    # --- the runtime's loop --------------------------------------------------------------

    def run(self, *, fire_timers: bool = True, max_rounds: int = 100_000) -> None:
        """Run until nothing is left to do (or only timers, with fire_timers=False)."""
        for _ in range(max_rounds):
            if any(self.inbox.values()):
                for instance_id in [i for i, evs in self.inbox.items() if evs]:
                    self.step(instance_id)
            elif self.activities and self.run_activities:
                self.run_pending_activities()
            elif self.timers and fire_timers:
                self.fire_next_timer()
            else:
                return
        raise AssertionError("the driver did not settle")

    def step(self, instance_id: str) -> ExecutionResult:
        pending = self.inbox[instance_id]
        take = len(pending) if self.batch_size is None else self.batch_size
        batch, self.inbox[instance_id] = pending[:take], pending[take:]
        state = self.states.get(instance_id) if self.hot else None
        if state is None:
            state = OrchestrationState.replay(self.registry, instance_id,
                                              self.events(instance_id))
        self.clock += timedelta(milliseconds=1)
        result = state.process(batch, now=self.clock)
        if self.hot:
            self.states[instance_id] = state
        self.steps[instance_id] = self.steps.get(instance_id, 0) + 1
        self.replayed_events += result.replayed_events
        stored = history_to_list(result.appended)
        json.dumps(stored)  # what a store would do: it must be JSON
        if result.history_reset:
            self.history[instance_id] = stored
        else:
            self.history.setdefault(instance_id, []).extend(stored)
        self.last[instance_id] = result
        for action in result.actions:
            self.dispatch(instance_id, action)
        return result

    def dispatch(self, instance_id: str, action: Any) -> None:
        if isinstance(action, ScheduleTask):
            self.activities.append((instance_id, action))
        elif isinstance(action, CreateTimer):
            self._seq += 1
            heapq.heappush(self.timers, (action.fire_at, self._seq, instance_id,
                                         action.task_id))
            self.timer_log.append((instance_id, action.task_id, action.fire_at))
        elif isinstance(action, CreateSubOrchestration):
            self.send(action.instance_id, action.start_event(self.clock))
        elif isinstance(action, CompleteOrchestration):
            event = action.parent_event(self.clock)
            if event is not None and action.parent is not None:
                self.send(action.parent.instance_id, event)
        elif isinstance(action, TerminateOrchestration):
            self.send(action.instance_id, ExecutionTerminated(
                output=action.output, recursive=action.recursive, timestamp=self.clock))
        else:
            raise AssertionError(f"unknown action {action!r}")

    def run_pending_activities(self) -> None:
        batch = list(self.activities)
        self.activities.clear()

        async def run_all() -> list[HistoryEvent]:
            return list(await asyncio.gather(*(
                run_activity(self.registry, i, a, sync_in_thread=False, now=self.clock)
                for i, a in batch)))

        done = list(zip(batch, self._loop.run_until_complete(run_all()), strict=True))
        if self.shuffle is not None:
            self.shuffle.shuffle(done)
        for (instance_id, _), event in done:
            self.send(instance_id, event)

    def fire_next_timer(self) -> None:
        fire_at, _, instance_id, task_id = heapq.heappop(self.timers)
        self.clock = max(self.clock, fire_at)
        self.send(instance_id, TimerFired(task_id=task_id, fire_at=fire_at,
                                          timestamp=self.clock))

    def close(self) -> None:
        self._loop.close()
