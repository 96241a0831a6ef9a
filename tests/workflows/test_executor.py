"""The executor's edge cases, driven directly with history events."""

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.workflows.driver import T0, Driver
from tether.platform.workflows import payload
from tether.platform.workflows.actions import CompleteOrchestration, ScheduleTask
from tether.platform.workflows.errors import InvalidHistoryError, SerializationError
from tether.platform.workflows.executor import OrchestrationState, execute
from tether.platform.workflows.history import (
    ExecutionStarted,
    HistoryEvent,
    OrchestratorStarted,
    TaskCompleted,
    TaskFailed,
)
from tether.workflow import (
    DaprWorkflowContext,
    FailureDetails,
    TaskFailedError,
    WorkflowActivityContext,
    WorkflowRegistry,
    WorkflowStatus,
    alternate_name,
    when_all,
)

Both = Callable[..., tuple[Driver, Driver]]


def start_event(name: str, input: str | None = None) -> ExecutionStarted:
    return ExecutionStarted(name=name, instance_id="wf-1", input=input, timestamp=T0)


def charge_registry(second: str) -> WorkflowRegistry:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="order")
    def order(ctx: DaprWorkflowContext, _: Any) -> Any:
        yield ctx.call_activity("reserve")
        yield ctx.create_timer(timedelta(seconds=1))
        return (yield ctx.call_activity(second))

    return wfr


def run_to_second_activity(wfr: WorkflowRegistry) -> list[HistoryEvent]:
    history: list[HistoryEvent] = []
    state = OrchestrationState(wfr, "wf-1")
    for batch in ([start_event("order")], [TaskCompleted(task_id=0, result="1")]):
        history += state.process(batch, now=T0).appended
    from tether.platform.workflows.history import TimerFired
    history += state.process([TimerFired(task_id=1, fire_at=T0)], now=T0).appended
    return history


def test_non_determinism_names_the_step() -> None:
    history = run_to_second_activity(charge_registry("charge"))
    result = execute(charge_registry("refund"), "wf-1", history,
                     [TaskCompleted(task_id=2, result="2")], now=T0)
    assert result.status == WorkflowStatus.FAILED
    assert result.failure is not None
    assert result.failure.error_type == "NonDeterminismError"
    assert "task 2: history has activity 'charge' but the code called activity 'refund'" \
        in result.failure.message
    assert [type(a) for a in result.actions] == [CompleteOrchestration]
    # the failure is recorded: replaying the failed history is stable
    again = execute(charge_registry("refund"), "wf-1", history + result.appended, [], now=T0)
    assert again.status == WorkflowStatus.FAILED and again.appended == []


def test_non_determinism_when_the_code_schedules_less_or_more() -> None:
    history = run_to_second_activity(charge_registry("charge"))
    wfr = WorkflowRegistry()

    @wfr.workflow(name="order")
    def shorter(ctx: DaprWorkflowContext, _: Any) -> Any:
        yield ctx.call_activity("reserve")
        return "done"

    result = execute(wfr, "wf-1", history, [], now=T0)
    assert result.failure is not None
    assert "task 1: history has a timer but the code did not schedule it" \
        in result.failure.message

    wfr = WorkflowRegistry()

    @wfr.workflow(name="order")
    def wider(ctx: DaprWorkflowContext, _: Any) -> Any:
        yield when_all([ctx.call_activity("reserve"), ctx.call_activity("audit")])

    result = execute(wfr, "wf-1", history, [], now=T0)
    assert [type(a) for a in result.actions] == [CompleteOrchestration]
    assert result.failure is not None
    assert "task 1: the code called activity 'audit' but history has no task 1 at that step" \
        in result.failure.message


def test_unknown_workflow_fails_at_once() -> None:
    wfr = WorkflowRegistry()
    wfr.register_workflow(lambda ctx, _: 1, name="known")
    result = execute(wfr, "wf-1", [], [start_event("nope")], now=T0)
    assert result.status == WorkflowStatus.FAILED
    assert result.failure == FailureDetails(
        "WorkflowNotRegisteredError", "workflow 'nope' is not registered (registered: known)")
    action = result.actions[-1]
    assert isinstance(action, CompleteOrchestration) and action.status == WorkflowStatus.FAILED


def test_a_raising_workflow_fails_with_details(both: Both) -> None:
    wfr = WorkflowRegistry()

    @wfr.activity(name="one")
    def one(ctx: WorkflowActivityContext, _: Any) -> int:
        return 1

    @wfr.workflow(name="bad")
    def bad(ctx: DaprWorkflowContext, _: Any) -> Any:
        yield ctx.call_activity(one)
        raise KeyError("missing thing")

    def scenario(d: Driver) -> None:
        d.start("bad")
        d.run()

    hot, _ = both(wfr, scenario)
    failure = hot.last["wf-1"].failure
    assert failure is not None and failure.error_type == "KeyError"
    assert failure.message == "'missing thing'"
    assert failure.stack_trace and "raise KeyError" in failure.stack_trace


def test_plain_function_workflows_and_alternate_names() -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow
    @alternate_name("greeter")
    def greet(ctx: DaprWorkflowContext, name: str) -> str:
        return f"hello {name} from {ctx.instance_id}"

    result = execute(wfr, "wf-1", [], [start_event("greeter", '"bob"')], now=T0)
    assert result.status == WorkflowStatus.COMPLETED
    assert result.output == '"hello bob from wf-1"'


def test_json_is_enforced() -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="bad_input")
    def bad_input(ctx: DaprWorkflowContext, _: Any) -> Any:
        try:
            yield ctx.call_activity("x", input={1, 2})
        except SerializationError as exc:
            return str(exc)

    @wfr.workflow(name="bad_output")
    def bad_output(ctx: DaprWorkflowContext, _: Any) -> Any:
        return object()

    result = execute(wfr, "wf-1", [], [start_event("bad_input")], now=T0)
    assert result.output is not None and "the input of activity 'x' must be JSON" in result.output
    result = execute(wfr, "wf-1", [], [start_event("bad_output")], now=T0)
    assert result.failure is not None and result.failure.error_type == "SerializationError"
    assert "the workflow output must be JSON-serialisable" in result.failure.message


def test_awaiting_or_yielding_non_tasks_is_a_clear_error() -> None:
    wfr = WorkflowRegistry()

    @wfr.async_workflow(name="sleeper")
    async def sleeper(ctx: DaprWorkflowContext, _: Any) -> int:
        await asyncio.sleep(0)  # not a workflow task: no event loop drives workflows
        return 1

    @wfr.workflow(name="yields_int")
    def yields_int(ctx: DaprWorkflowContext, _: Any) -> Any:
        yield 5

    result = execute(wfr, "wf-1", [], [start_event("sleeper")], now=T0)
    assert result.failure is not None
    assert "may only yield or await workflow tasks" in result.failure.message
    assert "it awaited NoneType" in result.failure.message
    result = execute(wfr, "wf-1", [], [start_event("yields_int")], now=T0)
    assert result.failure is not None and "it yielded int" in result.failure.message


def test_duplicate_and_stale_events_are_dropped() -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="pair")
    def pair(ctx: DaprWorkflowContext, _: Any) -> Any:
        return (yield when_all([ctx.call_activity("a"), ctx.call_activity("b")]))

    state = OrchestrationState(wfr, "wf-1")
    first = state.process([start_event("pair"), start_event("pair")], now=T0)
    assert [type(e) for e in first.appended].count(ExecutionStarted) == 1
    assert [a.name for a in first.actions if isinstance(a, ScheduleTask)] == ["a", "b"]
    second = state.process([TaskCompleted(task_id=0, result="1"),
                            TaskCompleted(task_id=0, result="99"),  # at-least-once redelivery
                            TaskCompleted(task_id=7, result="0")], now=T0)  # unknown task
    assert sum(isinstance(e, TaskCompleted) for e in second.appended) == 1
    assert second.actions == [] and second.status == WorkflowStatus.RUNNING
    assert state.process([TaskCompleted(task_id=0, result="1")], now=T0).appended == []
    done = state.process([TaskCompleted(task_id=1, result="2")], now=T0)
    assert done.output == "[1, 2]"
    assert state.process([TaskCompleted(task_id=1, result="2")], now=T0).appended == []


def test_when_all_fails_fast_and_failures_are_catchable() -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="fanout")
    def fanout(ctx: DaprWorkflowContext, _: Any) -> Any:
        tasks = [ctx.call_activity("a"), ctx.call_activity("b"), ctx.call_activity("c")]
        try:
            yield when_all(tasks)
        except TaskFailedError as exc:
            return {"error": exc.details.message, "done": [t.is_complete for t in tasks]}

    state = OrchestrationState(wfr, "wf-1")
    state.process([start_event("fanout")], now=T0)
    result = state.process([TaskFailed(task_id=1, failure=FailureDetails("E", "b broke"))],
                           now=T0)
    assert result.output == '{"error": "b broke", "done": [false, true, false]}'


def test_replay_sees_is_replaying_and_the_recorded_clock() -> None:
    wfr = WorkflowRegistry()
    seen: list[tuple[bool, str]] = []

    @wfr.workflow(name="clock")
    def clock(ctx: DaprWorkflowContext, _: Any) -> Any:
        seen.append((ctx.is_replaying, ctx.current_utc_datetime.isoformat()))
        yield ctx.call_activity("a")
        seen.append((ctx.is_replaying, ctx.current_utc_datetime.isoformat()))
        yield ctx.call_activity("b")
        seen.append((ctx.is_replaying, ctx.current_utc_datetime.isoformat()))

    t1, t2, t3 = T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    history = execute(wfr, "wf-1", [], [start_event("clock")], now=t1).appended
    history += execute(wfr, "wf-1", history, [TaskCompleted(task_id=0)], now=t2).appended
    seen.clear()
    result = execute(wfr, "wf-1", history, [TaskCompleted(task_id=1)], now=t3)
    assert result.status == WorkflowStatus.COMPLETED
    assert result.replayed_events == len(history)
    assert seen == [(True, t1.isoformat()), (True, t2.isoformat()), (False, t3.isoformat())]


def test_events_only_the_executor_writes_are_refused() -> None:
    state = OrchestrationState(WorkflowRegistry(), "wf-1")
    with pytest.raises(InvalidHistoryError):
        state.process([OrchestratorStarted(timestamp=T0)])


def test_async_activity_failure_reaches_the_workflow(both: Both) -> None:
    wfr = WorkflowRegistry()

    @wfr.activity(name="boom")
    async def boom(ctx: WorkflowActivityContext, n: int) -> int:
        raise RuntimeError(f"boom {n}")

    @wfr.workflow(name="w")
    def w(ctx: DaprWorkflowContext, _: Any) -> Any:
        try:
            yield ctx.call_activity(boom, input=4)
        except TaskFailedError as exc:
            return [exc.details.error_type, exc.details.message, str(exc)]

    def scenario(d: Driver) -> None:
        d.start("w")
        d.start("missing_activity_wf", instance_id="wf-2")
        d.run()

    hot, _ = both(wfr, scenario)
    assert hot.output("wf-1") == [
        "RuntimeError", "boom 4", "activity 'boom' (task 0) failed: RuntimeError: boom 4"]


def test_calling_an_unregistered_activity_fails_the_task() -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="w")
    def w(ctx: DaprWorkflowContext, _: Any) -> Any:
        return (yield ctx.call_activity("ghost"))

    d = Driver(wfr)
    d.start("w")
    d.run()
    failure = d.last["wf-1"].failure
    assert failure is not None and "activity 'ghost' is not registered" in failure.message
    d.close()


def test_recovery_actions_after_a_reload() -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="mixed")
    def mixed(ctx: DaprWorkflowContext, _: Any) -> Any:
        yield when_all([ctx.call_activity("a"), ctx.call_activity("b"),
                        ctx.create_timer(timedelta(seconds=5))])
        return "ok"

    first = execute(wfr, "wf-1", [], [start_event("mixed")], now=T0)
    history = first.appended
    second = execute(wfr, "wf-1", history, [TaskCompleted(task_id=0)], now=T0)
    history += second.appended
    reloaded = OrchestrationState.replay(wfr, "wf-1", history)
    assert reloaded.recovery_actions() == first.actions[1:]  # b and the timer are still open
    from tether.platform.workflows.history import TimerFired

    done = reloaded.process([TaskCompleted(task_id=1), TimerFired(task_id=2, fire_at=T0)],
                            now=T0)
    assert done.status == WorkflowStatus.COMPLETED
    history += done.appended
    again = OrchestrationState.replay(wfr, "wf-1", history)
    assert again.recovery_actions() == [a for a in done.actions
                                        if isinstance(a, CompleteOrchestration)]


def test_a_workflow_that_only_continues_as_new_is_stopped() -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="spin")
    def spin(ctx: DaprWorkflowContext, n: int) -> None:
        ctx.continue_as_new(n + 1)

    result = execute(wfr, "wf-1", [], [start_event("spin", "0")], now=T0)
    assert result.history_reset and result.status == WorkflowStatus.FAILED
    assert result.failure is not None
    assert result.failure.error_type == "ContinueAsNewLoopError"
    again = execute(wfr, "wf-1", result.appended, [], now=T0)
    assert again.status == WorkflowStatus.FAILED and again.appended == []


def test_steps_not_awaited_when_the_workflow_ends_are_cancelled() -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="hasty")
    def hasty(ctx: DaprWorkflowContext, _: Any) -> Any:
        yield ctx.call_activity("first")
        ctx.call_activity("forgotten")
        return "done"

    state = OrchestrationState(wfr, "wf-1")
    history = state.process([start_event("hasty")], now=T0).appended
    last = state.process([TaskCompleted(task_id=0)], now=T0)
    assert [type(a) for a in last.actions] == [CompleteOrchestration]
    again = execute(wfr, "wf-1", history + last.appended, [], now=T0)
    assert again.status == WorkflowStatus.COMPLETED and again.appended == []


def test_dataclass_inputs_travel_as_json_and_come_back_with_attributes(both: Both) -> None:
    import dataclasses

    @dataclasses.dataclass
    class Job:
        job_id: str
        healthy: bool

    wfr = WorkflowRegistry()

    @wfr.activity(name="check")
    def check(ctx: WorkflowActivityContext, job: Any) -> Any:
        return {"id": job.job_id, "was": job.healthy}

    @wfr.workflow(name="monitor")
    def monitor(ctx: DaprWorkflowContext, job: Any) -> Any:
        seen = yield ctx.call_activity(check, input=job)
        job.healthy = not job.healthy  # a SimpleNamespace: attributes work as on the original
        return {"seen": seen, "job": job}

    def scenario(d: Driver) -> None:
        d.send("wf-1", ExecutionStarted(name="monitor", instance_id="wf-1", timestamp=T0,
                                        input=payload.encode(Job("j1", True), "input")))
        d.run()

    hot, _ = both(wfr, scenario)
    out = hot.last["wf-1"].output
    assert out is not None
    assert json.loads(out) == {"seen": {"id": "j1", "was": True}, "job": {
        "job_id": "j1", "healthy": False, payload.AUTO_OBJECT: True}}


def test_payloads_are_written_as_daprs_sdk_writes_them() -> None:
    # json.dumps defaults: Dapr's samples compare the text ({"processed": true})
    from tether.platform.workflows import payload

    assert payload.encode({"processed": True, "items": [1, 2]}, "x") == \
        '{"processed": true, "items": [1, 2]}'
    # JSON text that came over HTTP stays as the caller wrote it
    assert payload.encode(payload.Raw('{"a":1}'), "x") == '{"a":1}'
