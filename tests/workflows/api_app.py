"""Workflows the HTTP API and CLI tests run (in the test process, or as an app under
``tether run``: ``python -m tests.workflows.api_app`` starts a WorkflowRuntime found through
the sidecar's environment and serves until SIGTERM)."""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from typing import Any

from tether.platform.workflows.durable import RuntimeConfig
from tether.workers.workflows import WorkflowRuntime


def build(config: RuntimeConfig | None = None) -> WorkflowRuntime:
    wfr = WorkflowRuntime(config)

    @wfr.activity(name="hello")
    def hello(ctx: Any, name: str) -> str:
        return f"hello {name}"

    @wfr.activity(name="explode")
    def explode(ctx: Any, why: str) -> None:
        raise ValueError(why)

    @wfr.workflow(name="greet")
    def greet(ctx: Any, name: str) -> Any:
        ctx.set_custom_status("greeting")
        first = yield ctx.call_activity(hello, input=name)
        second = yield ctx.call_activity(hello, input=first)
        return second

    @wfr.workflow(name="fail")
    def fail(ctx: Any, why: str) -> Any:
        yield ctx.call_activity(explode, input=why)

    @wfr.workflow(name="approval")
    def approval(ctx: Any, order: Any) -> Any:
        ctx.set_custom_status({"waiting": "approve"})
        decision = yield ctx.wait_for_external_event("approve")
        return {"order": order, "decision": decision}

    @wfr.workflow(name="parent")
    def parent(ctx: Any, _: Any) -> Any:
        result = yield ctx.call_child_workflow(approval, input="child",
                                               instance_id=f"{ctx.instance_id}-child")
        return result

    @wfr.workflow(name="sleepy")
    def sleepy(ctx: Any, _: Any) -> Any:
        yield ctx.create_timer(timedelta(hours=1))
        return "woke"

    return wfr


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    wfr = build()
    wfr.start()
    print("workflow runtime started", flush=True)
    try:
        stop.wait()
    finally:
        wfr.shutdown()


if __name__ == "__main__":
    main()
