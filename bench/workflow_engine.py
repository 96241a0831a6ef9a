"""The workflow engine alone (no broker, no store): the cost of a large fan-out/fan-in.

    .venv/bin/python bench/workflow_engine.py [--fan-out 10000] [--batch 0]

One instance fans out N activities with when_all and receives their N completions, in one
batch (--batch 0) or in batches of --batch. Prints the time to schedule, the time to apply
the completions on the hot path (state kept in memory), and the same on the cold path
(history replayed before each batch, as after a reload), with the cold/hot ratio. The
baseline is the hot path itself: the runtime's own overhead comes on top, measured by
bench/workflows.py.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from typing import Any

from tether.platform.workflows.actions import ScheduleTask
from tether.platform.workflows.executor import OrchestrationState
from tether.platform.workflows.history import ExecutionStarted, HistoryEvent, TaskCompleted
from tether.workflow import DaprWorkflowContext, WorkflowRegistry, when_all

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def registry() -> WorkflowRegistry:
    wfr = WorkflowRegistry()

    @wfr.workflow(name="fan")
    def fan(ctx: DaprWorkflowContext, n: int) -> Any:
        results = yield when_all([ctx.call_activity("square", input=i) for i in range(n)])
        return sum(results)

    return wfr


def run(n: int, batch: int, hot: bool) -> tuple[float, float, Any]:
    wfr = registry()
    state = OrchestrationState(wfr, "bench")
    t0 = time.perf_counter()
    first = state.process([ExecutionStarted(name="fan", instance_id="bench", input=str(n))],
                          now=NOW)
    t1 = time.perf_counter()
    history: list[HistoryEvent] = list(first.appended)
    completions = [TaskCompleted(task_id=a.task_id, result=str(a.task_id ** 2))
                   for a in first.actions if isinstance(a, ScheduleTask)]
    size = batch or n
    result = first
    for start in range(0, n, size):
        if not hot:
            state = OrchestrationState.replay(wfr, "bench", history)
        result = state.process(completions[start:start + size], now=NOW)
        history.extend(result.appended)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, result.output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fan-out", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=0, help="completions per batch (0: all)")
    args = parser.parse_args()
    schedule, hot, out_hot = run(args.fan_out, args.batch, hot=True)
    _, cold, out_cold = run(args.fan_out, args.batch, hot=False)
    assert out_hot == out_cold == str(sum(i * i for i in range(args.fan_out)))
    batches = -(-args.fan_out // (args.batch or args.fan_out))
    print(f"fan-out {args.fan_out}, {batches} completion batch(es)")
    print(f"  schedule:         {schedule:.3f} s")
    print(f"  fan-in, hot path: {hot:.3f} s")
    print(f"  fan-in, cold:     {cold:.3f} s  ({cold / hot:.1f}x the hot path)")


if __name__ == "__main__":
    main()
