"""A workflow's outcome does not depend on how the runtime batches events, in what order
activity completions arrive, or whether the instance stays in memory or is replayed."""

import random
from datetime import timedelta
from typing import Any

import pytest

from tests.workflows.driver import Driver
from tether.workflow import (
    DaprWorkflowContext,
    RetryPolicy,
    TaskFailedError,
    WorkflowActivityContext,
    WorkflowRegistry,
    when_all,
    when_any,
)


def registry() -> WorkflowRegistry:
    wfr = WorkflowRegistry()
    attempts: dict[int, int] = {}

    @wfr.activity(name="work")
    def work(ctx: WorkflowActivityContext, n: int) -> int:
        if n % 7 == 3:  # these fail twice, then succeed
            attempts[n] = attempts.get(n, 0) + 1
            if attempts[n] <= 2:
                raise RuntimeError(f"flaky {n}")
        if n % 11 == 5:
            raise ValueError(f"bad {n}")
        return n * 3

    @wfr.workflow(name="leaf")
    def leaf(ctx: DaprWorkflowContext, n: int) -> Any:
        got = yield ctx.wait_for_external_event("go")
        return n + got

    @wfr.workflow(name="mixed")
    def mixed(ctx: DaprWorkflowContext, n: int) -> Any:
        retry = RetryPolicy(first_retry_interval=timedelta(seconds=2), max_number_of_attempts=4,
                            backoff_coefficient=3)
        tasks = [ctx.call_activity(work, input=i, retry_policy=retry) for i in range(n)]
        results = []
        for t in tasks:
            try:
                results.append((yield t))
            except TaskFailedError as exc:
                results.append(exc.details.message)
        child = ctx.call_child_workflow(leaf, input=100, instance_id="leaf-1")
        timer = ctx.create_timer(timedelta(minutes=10))
        first = yield when_any([child, timer])
        late = yield child
        total = yield when_all([ctx.call_activity(work, input=i) for i in (1, 2, 4)])
        return {"results": results, "child_first": first == child, "late": late,
                "total": sum(total)}

    return wfr


def run(hot: bool, batch_size: int | None, seed: int | None) -> tuple[Any, int]:
    d = Driver(registry(), hot=hot, batch_size=batch_size,
               shuffle=None if seed is None else random.Random(seed))
    d.start("mixed", 40)
    d.raise_event("leaf-1", "go", 1)  # buffered until the child starts
    d.run()
    out = d.output("wf-1"), d.replayed_events
    d.close()
    return out


@pytest.mark.parametrize("hot", [True, False])
@pytest.mark.parametrize("batch_size", [None, 1, 3, 17])
@pytest.mark.parametrize("seed", [None, 1, 2])
def test_outcome_is_independent_of_batching_order_and_path(
        hot: bool, batch_size: int | None, seed: int | None) -> None:
    expected, _ = run(True, None, None)
    assert expected["child_first"] is True and expected["late"] == 101
    assert expected["results"][3] == 9 and expected["results"][5] == "bad 5"
    out, replayed = run(hot, batch_size, seed)
    assert out == expected
    assert (replayed == 0) == hot
