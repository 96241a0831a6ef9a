"""The workflows and activities the runtime tests run (each pattern of docs/workflows.md),
registered on any WorkflowRuntime by ``register``. Also imported by worker processes of the
crash tests, so everything here is deterministic and JSON in, JSON out."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

from tether.workers.workflows import WorkflowRuntime
from tether.workflow import (
    DaprWorkflowContext,
    RetryPolicy,
    TaskFailedError,
    WorkflowActivityContext,
    when_all,
    when_any,
)

#: attempts per (instance, activity), for the retry test (one process runs it)
ATTEMPTS: Counter[str] = Counter()


def register(wfr: WorkflowRuntime) -> None:
    @wfr.activity(name="double")
    def double(ctx: WorkflowActivityContext, x: int) -> int:
        return x * 2

    @wfr.activity(name="square")
    async def square(ctx: WorkflowActivityContext, x: int) -> int:
        return x * x

    @wfr.activity(name="slow_square")
    async def slow_square(ctx: WorkflowActivityContext, x: int) -> int:
        await asyncio.sleep(0.2)  # so that crash tests kill workers mid-activity
        return x * x

    @wfr.activity(name="boom")
    def boom(ctx: WorkflowActivityContext, message: str) -> None:
        raise ValueError(message)

    @wfr.activity(name="flaky")
    def flaky(ctx: WorkflowActivityContext, fail_times: int) -> str:
        ATTEMPTS[ctx.workflow_id] += 1
        if ATTEMPTS[ctx.workflow_id] <= fail_times:
            raise RuntimeError(f"attempt {ATTEMPTS[ctx.workflow_id]} fails")
        return f"ok after {ATTEMPTS[ctx.workflow_id]}"

    @wfr.workflow(name="chain")
    def chain(ctx: DaprWorkflowContext, x: int) -> Any:
        for _ in range(5):
            x = yield ctx.call_activity(double, input=x)
        return x

    @wfr.workflow(name="fan")
    def fan(ctx: DaprWorkflowContext, n: int) -> Any:
        results = yield when_all([ctx.call_activity(square, input=i) for i in range(n)])
        return sum(results)

    @wfr.workflow(name="race")
    def race(ctx: DaprWorkflowContext, seconds: float) -> Any:
        event = ctx.wait_for_external_event("go")
        timer = ctx.create_timer(timedelta(seconds=seconds))
        winner = yield when_any([event, timer])
        return f"event {event.get_result()}" if winner == event else "timeout"

    @wfr.workflow(name="monitor")
    def monitor(ctx: DaprWorkflowContext, state: dict[str, int]) -> Any:
        value = yield ctx.call_activity(double, input=state["n"])
        ctx.set_custom_status({"round": state["n"], "value": value})
        if state["n"] >= state["until"]:
            return {"rounds": state["n"], "last": value}
        yield ctx.create_timer(timedelta(seconds=0.2))
        ctx.continue_as_new({"n": state["n"] + 1, "until": state["until"]})
        return None

    @wfr.workflow(name="approval")
    def approval(ctx: DaprWorkflowContext, timeout: float) -> Any:
        decision = ctx.wait_for_external_event("approval")
        expiry = ctx.create_timer(timedelta(seconds=timeout))
        winner = yield when_any([decision, expiry])
        if winner == expiry:
            return "timed out"
        return "approved" if decision.get_result().get("approved") else "rejected"

    @wfr.workflow(name="child")
    def child(ctx: DaprWorkflowContext, x: int) -> Any:
        if x < 0:
            yield ctx.call_activity(boom, input=f"negative {x}")
        y = yield ctx.call_activity(double, input=x)
        return y

    @wfr.workflow(name="parent")
    def parent(ctx: DaprWorkflowContext, xs: list[int]) -> Any:
        results = yield when_all([ctx.call_child_workflow(child, input=x) for x in xs])
        return results

    @wfr.workflow(name="careful_parent")
    def careful_parent(ctx: DaprWorkflowContext, x: int) -> Any:
        try:
            yield ctx.call_child_workflow(child, input=x)
        except TaskFailedError as exc:
            return f"caught: {exc.details.error_type}"
        return "no failure"

    @wfr.workflow(name="retrying")
    def retrying(ctx: DaprWorkflowContext, spec: dict[str, int]) -> Any:
        policy = RetryPolicy(first_retry_interval=timedelta(seconds=0.1),
                             backoff_coefficient=2.0,
                             max_number_of_attempts=spec["attempts"])
        result = yield ctx.call_activity(flaky, input=spec["fail"], retry_policy=policy)
        return result

    @wfr.workflow(name="waiter")
    def waiter(ctx: DaprWorkflowContext, _: Any) -> Any:
        data = yield ctx.wait_for_external_event("go")
        return data

    @wfr.workflow(name="collect_two")
    def collect_two(ctx: DaprWorkflowContext, _: Any) -> Any:
        first = yield ctx.wait_for_external_event("x")
        second = yield ctx.wait_for_external_event("x")
        return [first, second]

    @wfr.workflow(name="waiting_parent")
    def waiting_parent(ctx: DaprWorkflowContext, child_id: str) -> Any:
        result = yield ctx.call_child_workflow(waiter, input=None, instance_id=child_id)
        return result

    @wfr.workflow(name="fanout_chain")
    def fanout_chain(ctx: DaprWorkflowContext, spec: dict[str, int]) -> Any:
        """For the crash tests: a fan-out, then a short chain."""
        values = yield when_all([ctx.call_activity(slow_square, input=i)
                                 for i in range(spec["width"])])
        total = sum(values)
        for _ in range(2):
            total = yield ctx.call_activity(double, input=total)
        return total + spec["seed"]


def fanout_chain_expected(width: int, seed: int) -> int:
    return sum(i * i for i in range(width)) * 4 + seed
