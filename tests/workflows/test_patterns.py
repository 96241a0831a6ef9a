"""The workflow patterns end to end through the in-process driver, on the hot path (state
kept between steps) and the cold path (full replay each step), which must agree."""

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.workflows.driver import T0, Driver
from tether.platform.workflows.history import ExecutionStarted, TaskCompleted, TimerCreated
from tether.workflow import (
    DaprWorkflowContext,
    RetryPolicy,
    TaskFailedError,
    WorkflowActivityContext,
    WorkflowRegistry,
    WorkflowStatus,
    when_all,
    when_any,
)

Both = Callable[..., tuple[Driver, Driver]]


def start(name: str, input: Any = None, instance_id: str = "wf-1") -> Callable[[Driver], None]:
    def scenario(d: Driver) -> None:
        d.start(name, input, instance_id)
        d.run()

    return scenario


def test_chaining_with_sync_and_async_activities(both: Both) -> None:
    wfr = WorkflowRegistry()
    seen: list[tuple[str, int]] = []

    @wfr.activity(name="add_one")
    def add_one(ctx: WorkflowActivityContext, n: int) -> int:
        seen.append((ctx.workflow_id, ctx.task_id))
        return n + 1

    @wfr.activity
    async def double(ctx: WorkflowActivityContext, n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    @wfr.workflow(name="chain")
    def chain(ctx: DaprWorkflowContext, n: int) -> Any:
        a = yield ctx.call_activity(add_one, input=n)
        b = yield ctx.call_activity(double, input=a)
        c = yield ctx.call_activity("add_one", input=b)
        return [a, b, c]

    hot, cold = both(wfr, start("chain", 3))
    assert hot.status("wf-1") == WorkflowStatus.COMPLETED
    assert hot.output("wf-1") == [4, 8, 9]
    assert seen[:2] == [("wf-1", 0), ("wf-1", 2)]
    assert cold.replayed_events > 0


def fan_out_registry(calls: dict[str, int]) -> WorkflowRegistry:
    wfr = WorkflowRegistry()

    @wfr.activity(name="square")
    def square(ctx: WorkflowActivityContext, n: int) -> int:
        return n * n

    @wfr.workflow(name="fan")
    def fan(ctx: DaprWorkflowContext, n: int) -> Any:
        calls["invocations"] += 1
        results = yield when_all([ctx.call_activity(square, input=i) for i in range(n)])
        calls["after_fan_in"] += 1
        return sum(results)

    return wfr


def test_fan_out_fan_in_of_1000_in_one_batch_and_in_several(both: Both) -> None:
    expected = sum(i * i for i in range(1000))
    outputs = []
    for batch_size in (None, 100, 7):
        calls = {"invocations": 0, "after_fan_in": 0}
        hot, cold = both(fan_out_registry(calls), start("fan", 1000), batch_size=batch_size)
        assert hot.output("wf-1") == cold.output("wf-1") == expected
        outputs.append(hot.output("wf-1"))
        if batch_size is None:
            # one batch of 1000 completions is one step: the cold path ran the workflow
            # function once for the start and once for the fan-in, the hot path once in all
            assert hot.steps["wf-1"] == cold.steps["wf-1"] == 2
            assert calls["invocations"] == 1 + 2
            assert calls["after_fan_in"] == 1 + 1
        else:
            steps = 1 + -(-1000 // batch_size)
            assert cold.steps["wf-1"] == steps
            assert calls["invocations"] == 1 + steps
    assert outputs == [expected] * 3


def approval_registry() -> WorkflowRegistry:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="approval")
    def approval(ctx: DaprWorkflowContext, _: Any) -> Any:
        event = ctx.wait_for_external_event("approval")
        timeout = ctx.create_timer(timedelta(hours=1))
        winner = yield when_any([event, timeout])
        if winner == timeout:
            return {"approved": False, "at": ctx.current_utc_datetime.isoformat()}
        return {"approved": True, "by": winner.get_result()}

    return wfr


def test_when_any_event_before_timeout(both: Both) -> None:
    def scenario(d: Driver) -> None:
        d.start("approval")
        d.run(fire_timers=False)
        assert d.status("wf-1") == WorkflowStatus.RUNNING
        d.raise_event("wf-1", "Approval", "alice")  # names match case-insensitively
        d.run()

    hot, _ = both(approval_registry(), scenario)
    assert hot.output("wf-1") == {"approved": True, "by": "alice"}


def test_when_any_timeout_before_event(both: Both) -> None:
    def scenario(d: Driver) -> None:
        d.start("approval")
        d.run()
        d.raise_event("wf-1", "approval", "too late")  # the instance is done: dropped
        d.run()

    hot, _ = both(approval_registry(), scenario)
    out = hot.output("wf-1")
    assert out["approved"] is False
    # the workflow's clock is the step's time, at or after the timer's due time
    assert out["at"] >= (T0 + timedelta(hours=1)).isoformat()
    assert hot.last["wf-1"].appended == []


def test_external_events_are_buffered_fifo_per_name(both: Both) -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="collect")
    def collect(ctx: DaprWorkflowContext, _: Any) -> Any:
        first = yield ctx.wait_for_external_event("item")
        other = yield ctx.wait_for_external_event("other")
        second = yield ctx.wait_for_external_event("item")
        third = yield ctx.wait_for_external_event("item")
        return [first, other, second, third]

    def scenario(d: Driver) -> None:
        d.raise_event("wf-1", "item", 1)  # raised before the instance even started
        d.start("collect")
        d.raise_event("wf-1", "item", 2)
        d.raise_event("wf-1", "other", "x")
        d.run()
        assert d.status("wf-1") == WorkflowStatus.RUNNING  # waiting for a third item
        d.raise_event("wf-1", "item", 3)
        d.run()

    hot, _ = both(wfr, scenario)
    assert hot.output("wf-1") == [1, "x", 2, 3]


def test_monitor_loop_with_timer_and_continue_as_new(both: Both) -> None:
    wfr = WorkflowRegistry()

    @wfr.activity(name="check")
    def check(ctx: WorkflowActivityContext, n: int) -> str:
        return "healthy" if n < 3 else "done"

    @wfr.workflow(name="monitor")
    def monitor(ctx: DaprWorkflowContext, n: int) -> Any:
        state = yield ctx.call_activity(check, input=n)
        ctx.set_custom_status({"round": n, "state": state})
        if state == "done":
            return n
        yield ctx.create_timer(ctx.current_utc_datetime + timedelta(minutes=5))
        ctx.continue_as_new(n + 1)

    hot, _ = both(wfr, start("monitor", 0))
    assert hot.output("wf-1") == 3
    assert hot.last["wf-1"].custom_status == '{"round": 3, "state": "done"}'
    # history was truncated: only the last generation is stored
    events = hot.events("wf-1")
    started = [e for e in events if isinstance(e, ExecutionStarted)]
    assert len(started) == 1 and started[0].generation == 3 and started[0].input == "3"
    # task ids keep growing across generations, so stale completions cannot match
    assert started[0].first_task_id == 6
    fire_times = [t for _, _, t in hot.timer_log]
    assert len(fire_times) == 3 and fire_times == sorted(fire_times)


def test_continue_as_new_carries_buffered_events_with_save_events(both: Both) -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="counter")
    def counter(ctx: DaprWorkflowContext, total: int) -> Any:
        n = yield ctx.wait_for_external_event("add")
        if n is None:
            return total
        ctx.continue_as_new(total + n, save_events=True)

    def scenario(d: Driver) -> None:
        d.start("counter", 0)
        for n in (1, 2, 3, None):
            d.raise_event("wf-1", "add", n)
        d.run()

    hot, _ = both(wfr, scenario)
    assert hot.output("wf-1") == 6


def child_registry() -> WorkflowRegistry:
    wfr = WorkflowRegistry()

    @wfr.activity(name="may_fail")
    def may_fail(ctx: WorkflowActivityContext, n: int) -> int:
        if n < 0:
            raise ValueError(f"negative: {n}")
        return n * 10

    @wfr.workflow(name="child")
    def child(ctx: DaprWorkflowContext, n: int) -> Any:
        return (yield ctx.call_activity(may_fail, input=n))

    @wfr.workflow(name="parent")
    def parent(ctx: DaprWorkflowContext, ns: list[int]) -> Any:
        results = yield when_all([ctx.call_child_workflow(child, input=n) for n in ns])
        return results

    @wfr.workflow(name="careful_parent")
    def careful_parent(ctx: DaprWorkflowContext, n: int) -> Any:
        try:
            return (yield ctx.call_child_workflow("child", input=n, instance_id="kid"))
        except TaskFailedError as exc:
            return {"caught": exc.details.error_type, "message": str(exc)}

    return wfr


def test_child_workflows_succeed(both: Both) -> None:
    hot, _ = both(child_registry(), start("parent", [1, 2, 3]))
    assert hot.output("wf-1") == [10, 20, 30]
    assert hot.status("wf-1:0000") == WorkflowStatus.COMPLETED
    assert hot.events("wf-1:0000")[1].parent.instance_id == "wf-1"  # type: ignore[attr-defined]


def test_child_workflow_failure_propagates(both: Both) -> None:
    hot, _ = both(child_registry(), start("parent", [1, -2]))
    assert hot.status("wf-1:0001") == WorkflowStatus.FAILED
    assert hot.status("wf-1") == WorkflowStatus.FAILED
    failure = hot.last["wf-1"].failure
    assert failure is not None and failure.error_type == "TaskFailedError"
    assert "child workflow 'child'" in failure.message and "negative: -2" in failure.message

    hot, _ = both(child_registry(), start("careful_parent", -5))
    out = hot.output("wf-1")
    assert out["caught"] == "TaskFailedError"  # the child failed on its activity's error
    assert "negative: -5" in out["message"]
    assert hot.status("kid") == WorkflowStatus.FAILED


def retry_registry(failures: int, policy: RetryPolicy) -> WorkflowRegistry:
    wfr = WorkflowRegistry()
    attempts: dict[str, int] = {}

    @wfr.activity(name="flaky")
    def flaky(ctx: WorkflowActivityContext, _: Any) -> str:
        attempts[ctx.workflow_id] = attempts.get(ctx.workflow_id, 0) + 1
        if attempts[ctx.workflow_id] <= failures:
            raise ConnectionError(f"attempt {attempts[ctx.workflow_id]} failed")
        return f"ok after {attempts[ctx.workflow_id]}"

    @wfr.workflow(name="retrying")
    def retrying(ctx: DaprWorkflowContext, _: Any) -> Any:
        try:
            return (yield ctx.call_activity(flaky, retry_policy=policy))
        except TaskFailedError as exc:
            return {"gave_up": exc.details.message}

    return wfr


def retry_delays(d: Driver) -> list[float]:
    # each retry timer is due its delay after the failed attempt's step
    steps = d.events("wf-1")
    created = [e for e in steps if isinstance(e, TimerCreated)]
    return [(e.fire_at - e.timestamp).total_seconds() for e in created]


def test_retries_with_backoff_follow_the_policy(both: Both) -> None:
    policy = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=6,
                         backoff_coefficient=2, max_retry_interval=timedelta(seconds=5))
    hot, _ = both(lambda: retry_registry(4, policy), start("retrying"))
    assert hot.output("wf-1") == "ok after 5"
    assert retry_delays(hot) == [1, 2, 4, 5]
    completed = [e for e in hot.events("wf-1") if isinstance(e, TaskCompleted)]
    assert len(completed) == 1  # attempts are separate tasks: 5 scheduled, 1 completed


def test_retries_give_up_after_max_attempts_and_retry_timeout(both: Both) -> None:
    policy = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=3)
    hot, _ = both(lambda: retry_registry(10, policy), start("retrying"))
    assert hot.output("wf-1") == {"gave_up": "attempt 3 failed"}
    assert retry_delays(hot) == [1, 1]

    policy = RetryPolicy(first_retry_interval=timedelta(seconds=10), max_number_of_attempts=50,
                         backoff_coefficient=2, retry_timeout=timedelta(seconds=60))
    hot, _ = both(lambda: retry_registry(100, policy), start("retrying"))
    # 10 + 20 fit within 60 s of the first attempt; the next (40 s more) would not
    assert retry_delays(hot) == [10, 20]
    assert hot.output("wf-1") == {"gave_up": "attempt 3 failed"}


def test_terminate_is_recursive(both: Both) -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="waiter")
    def waiter(ctx: DaprWorkflowContext, _: Any) -> Any:
        return (yield ctx.wait_for_external_event("never"))

    @wfr.workflow(name="top")
    def top(ctx: DaprWorkflowContext, _: Any) -> Any:
        return (yield when_all([ctx.call_child_workflow(waiter), ctx.call_child_workflow(
            waiter, instance_id="named-child")]))

    def scenario(d: Driver) -> None:
        d.start("top")
        d.run()
        assert d.status("named-child") == WorkflowStatus.RUNNING
        d.terminate("wf-1", output="stopped by test")
        d.run()

    hot, _ = both(wfr, scenario)
    for instance in ("wf-1", "wf-1:0000", "named-child"):
        assert hot.status(instance) == WorkflowStatus.TERMINATED
    assert hot.output("wf-1") == "stopped by test"


def test_suspend_holds_events_until_resume(both: Both) -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="gate")
    def gate(ctx: DaprWorkflowContext, _: Any) -> Any:
        return (yield ctx.wait_for_external_event("open"))

    def scenario(d: Driver) -> None:
        d.start("gate")
        d.run()
        d.suspend("wf-1")
        d.run()
        assert d.status("wf-1") == WorkflowStatus.SUSPENDED
        d.raise_event("wf-1", "open", "now")
        d.run()
        assert d.status("wf-1") == WorkflowStatus.SUSPENDED  # held, not delivered
        d.resume("wf-1")
        d.run()

    hot, _ = both(wfr, scenario)
    assert hot.output("wf-1") == "now"


def test_terminate_a_suspended_instance(both: Both) -> None:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="gate")
    def gate(ctx: DaprWorkflowContext, _: Any) -> Any:
        return (yield ctx.wait_for_external_event("open"))

    def scenario(d: Driver) -> None:
        d.start("gate")
        d.suspend("wf-1")
        d.terminate("wf-1")
        d.run()

    hot, _ = both(wfr, scenario)
    assert hot.status("wf-1") == WorkflowStatus.TERMINATED


def test_async_workflows_and_input_less_functions(both: Both) -> None:
    wfr = WorkflowRegistry()

    @wfr.activity(name="now")
    def now(ctx: WorkflowActivityContext) -> str:  # Dapr samples omit an unused input
        return f"task {ctx.task_id}"

    @wfr.activity(name="inc")
    async def inc(ctx: WorkflowActivityContext, n: int) -> int:
        return n + 1

    @wfr.async_workflow(name="async_chain")
    async def async_chain(ctx: DaprWorkflowContext, n: int) -> Any:
        a = await ctx.call_activity(inc, input=n)
        parts = await ctx.when_all([ctx.call_activity(inc, input=a + i) for i in range(3)])
        await ctx.create_timer(timedelta(seconds=1))
        try:
            await ctx.call_child_workflow("no_input")
        except TaskFailedError as exc:
            return {"parts": parts, "child": exc.details.message}
        return None

    @wfr.workflow(name="no_input")
    def no_input(ctx: DaprWorkflowContext) -> Any:
        stamp = yield ctx.call_activity(now)
        raise ValueError(f"child saw {stamp}")

    hot, _ = both(wfr, start("async_chain", 1))
    assert hot.output("wf-1") == {"parts": [3, 4, 5], "child": "child saw task 0"}


def test_child_workflow_retries_with_is_replaying_guarded_side_effects(both: Both) -> None:
    def make() -> WorkflowRegistry:
        wfr = WorkflowRegistry()
        runs: list[str] = []
        policy = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=3,
                             backoff_coefficient=2)

        @wfr.activity(name="note")
        def note(ctx: WorkflowActivityContext) -> int:
            return len(runs)

        @wfr.workflow(name="unsteady")
        def unsteady(ctx: DaprWorkflowContext) -> Any:
            if not ctx.is_replaying:  # a side effect once per run, as Dapr samples do
                runs.append(ctx.instance_id)
            seen = yield ctx.call_activity(note)
            if seen < 3:
                raise ValueError(f"only {seen} runs so far")
            return runs

        @wfr.workflow(name="patient")
        def patient(ctx: DaprWorkflowContext, _: Any) -> Any:
            return (yield ctx.call_child_workflow(unsteady, retry_policy=policy))

        return wfr

    hot, _ = both(make, start("patient"))
    # three attempts, each a fresh child instance; the delays follow the policy
    assert hot.output("wf-1") == ["wf-1:0000", "wf-1:0002", "wf-1:0004"]
    assert [hot.status(i) for i in ("wf-1:0000", "wf-1:0002", "wf-1:0004")] == [
        WorkflowStatus.FAILED, WorkflowStatus.FAILED, WorkflowStatus.COMPLETED]
    assert retry_delays(hot) == [1, 2]


def test_async_context_extras_are_deterministic(both: Both) -> None:
    wfr = WorkflowRegistry()

    @wfr.activity(name="maybe")
    def maybe(ctx: WorkflowActivityContext, n: int) -> int:
        if n == 2:
            raise ValueError("two")
        return n

    @wfr.async_workflow(name="extras")
    async def extras(ctx: DaprWorkflowContext, _: Any) -> Any:
        first = str(ctx.new_guid())
        await ctx.sleep(1.5)
        results = await ctx.gather(*[ctx.call_activity(maybe, input=n) for n in range(4)],
                                   return_exceptions=True)
        await ctx.create_timer(30)
        return {"guids": [first, str(ctx.uuid4())], "roll": ctx.random().randint(1, 10**9),
                "results": [r if isinstance(r, int) else type(r).__name__ for r in results],
                "elapsed": (ctx.now() - T0).total_seconds() >= 31.5}

    hot, _ = both(wfr, start("extras"))
    out = hot.output("wf-1")  # the same on the cold path, where it was replayed (conftest)
    assert out["results"] == [0, 1, "TaskFailedError", 3]
    assert out["elapsed"] is True and out["guids"][0] != out["guids"][1]


def test_a_retried_child_with_a_chosen_id_runs_again_under_that_id(both: Both) -> None:
    def make() -> WorkflowRegistry:
        wfr = WorkflowRegistry()
        runs: list[int] = []
        policy = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=3)

        @wfr.activity(name="count")
        def count(ctx: WorkflowActivityContext) -> int:
            runs.append(ctx.task_id)
            return len(runs)

        @wfr.workflow(name="shaky")
        def shaky(ctx: DaprWorkflowContext, _: Any) -> Any:
            n = yield ctx.call_activity(count)
            if n < 3:
                raise ValueError(f"run {n} failed")
            return n

        @wfr.workflow(name="parent")
        def parent(ctx: DaprWorkflowContext, _: Any) -> Any:
            return (yield ctx.call_child_workflow(shaky, instance_id="kid", retry_policy=policy))

        return wfr

    def scenario(d: Driver) -> None:
        d.start("parent")
        d.run()
        # a redelivered start of the finished child is still a duplicate, not a new run
        d.send("kid", d.events("kid")[1])
        d.run()

    hot, _ = both(make, scenario)
    assert hot.output("wf-1") == 3
    assert hot.status("kid") == WorkflowStatus.COMPLETED
    started = [e for e in hot.events("kid") if isinstance(e, ExecutionStarted)]
    # the finished runs were replaced: one run in history, numbered after the earlier ones
    assert len(started) == 1 and started[0].generation == 2
    assert started[0].parent is not None and started[0].parent.task_id == 4
