"""A readable, one-line-per-event view of a history (for `tether workflow history`)."""

from __future__ import annotations

from tether.platform.workflows import history as h


def _clip(text: str | None, width: int) -> str:
    if text is None:
        return "-"
    return text if len(text) <= width else text[:width - 3] + "..."


def describe(ev: h.HistoryEvent, width: int = 60) -> str:
    """What one event says, without its type and time."""
    if isinstance(ev, h.ExecutionStarted):
        parent = f" parent={ev.parent.instance_id}#{ev.parent.task_id}" if ev.parent else ""
        run = f" run={ev.generation}" if ev.generation else ""
        return f"workflow {ev.name!r} input={_clip(ev.input, width)}{parent}{run}"
    if isinstance(ev, h.TaskScheduled):
        return f"#{ev.task_id} activity {ev.name!r} input={_clip(ev.input, width)}"
    if isinstance(ev, h.TaskCompleted | h.SubOrchestrationCompleted):
        return f"#{ev.task_id} result={_clip(ev.result, width)}"
    if isinstance(ev, h.TaskFailed | h.SubOrchestrationFailed):
        return f"#{ev.task_id} {ev.failure.error_type}: {_clip(ev.failure.message, width)}"
    if isinstance(ev, h.TimerCreated | h.TimerFired):
        return f"#{ev.task_id} fire_at={ev.fire_at.isoformat()}"
    if isinstance(ev, h.SubOrchestrationCreated):
        return (f"#{ev.task_id} child workflow {ev.name!r} id={ev.instance_id}"
                f" input={_clip(ev.input, width)}")
    if isinstance(ev, h.EventRaised):
        return f"event {ev.name!r} input={_clip(ev.input, width)}"
    if isinstance(ev, h.ExecutionCompleted):
        detail = (f"{ev.failure.error_type}: {_clip(ev.failure.message, width)}"
                  if ev.failure else f"output={_clip(ev.output, width)}")
        return f"{ev.status.value} {detail}"
    if isinstance(ev, h.ExecutionTerminated):
        return f"output={_clip(ev.output, width)} recursive={ev.recursive}"
    if isinstance(ev, h.ExecutionSuspended | h.ExecutionResumed):
        return ev.reason or ""
    return ""


def format_history(events: list[h.HistoryEvent], width: int = 60) -> list[str]:
    """One line per event: seconds since the first event, type, and what it says.
    h.OrchestratorStarted lines mark the steps ("-- step at ...")."""
    if not events:
        return []
    origin = events[0].timestamp
    lines = []
    for ev in events:
        offset = (ev.timestamp - origin).total_seconds()
        if isinstance(ev, h.OrchestratorStarted):
            lines.append(f"{offset:>10.3f}s  -- step")
            continue
        lines.append(f"{offset:>10.3f}s  {type(ev).__name__:<26}{describe(ev, width)}".rstrip())
    return lines
