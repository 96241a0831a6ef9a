"""History events and actions survive to_dict / JSON / from_dict unchanged."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from tether.platform.workflows import history as h
from tether.platform.workflows.actions import CompleteOrchestration, CreateTimer
from tether.platform.workflows.errors import FailureDetails, InvalidHistoryError
from tether.platform.workflows.retry import RetryPolicy

T0 = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def all_events() -> list[h.HistoryEvent]:
    fail = FailureDetails("ValueError", "boom", "Traceback ...")
    parent = h.ParentInstance("parent_wf", "p-1", 7)
    return [
        h.ExecutionStarted(name="wf", instance_id="i-1", input='{"a":1}', parent=parent,
                           scheduled_start=T0, generation=2, first_task_id=10, timestamp=T0),
        h.OrchestratorStarted(timestamp=T0),
        h.TaskScheduled(task_id=0, name="act", input="1", timestamp=T0),
        h.TaskCompleted(task_id=0, result='"ok"', timestamp=T0),
        h.TaskFailed(task_id=1, failure=fail, timestamp=T0),
        h.TimerCreated(task_id=2, fire_at=T0 + timedelta(seconds=5), timestamp=T0),
        h.TimerFired(task_id=2, fire_at=T0 + timedelta(seconds=5), timestamp=T0),
        h.SubOrchestrationCreated(task_id=3, name="child", instance_id="i-1:0003", input=None,
                                  timestamp=T0),
        h.SubOrchestrationCompleted(task_id=3, result="null", timestamp=T0),
        h.SubOrchestrationFailed(task_id=3, failure=fail, timestamp=T0),
        h.EventRaised(name="approval", input="true", timestamp=T0),
        h.ExecutionSuspended(reason="r", timestamp=T0),
        h.ExecutionResumed(timestamp=T0),
        h.ExecutionTerminated(output='"stop"', recursive=False, timestamp=T0),
        h.ExecutionCompleted(status=h.RuntimeStatus.FAILED, failure=fail, timestamp=T0),
    ]


def test_every_event_round_trips_through_json() -> None:
    events = all_events()
    text = json.dumps(h.history_to_list(events))
    assert h.history_from_list(json.loads(text)) == events


def test_every_event_type_is_covered() -> None:
    covered = {type(e).__name__ for e in all_events()}
    assert covered == set(h.HistoryEvent._types)


def test_naive_datetimes_are_utc_and_unknown_types_are_rejected() -> None:
    d = h.TimerCreated(task_id=1, fire_at=datetime(2026, 1, 1), timestamp=T0).to_dict()
    assert d["fire_at"] == "2026-01-01T00:00:00+00:00"
    with pytest.raises(InvalidHistoryError):
        h.event_from_dict({"type": "Nope"})
    with pytest.raises(InvalidHistoryError):
        h.event_from_dict({"type": "TaskCompleted"})  # no task_id


def test_actions_have_a_json_form() -> None:
    a = CreateTimer(task_id=3, fire_at=T0)
    assert json.loads(json.dumps(a.to_dict())) == {
        "type": "CreateTimer", "task_id": 3, "fire_at": T0.isoformat()}
    c = CompleteOrchestration(status=h.RuntimeStatus.COMPLETED, output="1")
    assert c.to_dict()["status"] == "COMPLETED"


def test_retry_policy_delays() -> None:
    p = RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=5,
                    backoff_coefficient=2, max_retry_interval=timedelta(seconds=5))
    assert [p.delay(n).total_seconds() for n in range(1, 6)] == [1, 2, 4, 5, 5]
    assert p.next_retry_at(5, T0, T0) is None
    t = RetryPolicy(first_retry_interval=timedelta(seconds=10), max_number_of_attempts=9,
                    retry_timeout=timedelta(seconds=15))
    assert t.next_retry_at(1, T0, T0) == T0 + timedelta(seconds=10)
    assert t.next_retry_at(2, T0, T0 + timedelta(seconds=10)) is None
    with pytest.raises(ValueError):
        RetryPolicy(first_retry_interval=timedelta(seconds=1), max_number_of_attempts=0)


def test_history_view_has_one_readable_line_per_event() -> None:
    from tether.platform.workflows.view import format_history

    lines = format_history(all_events())
    assert len(lines) == len(all_events())
    assert lines[0].endswith("workflow 'wf' input={\"a\":1} parent=p-1#7 run=2")
    assert "TaskScheduled" in lines[2] and "#0 activity 'act' input=1" in lines[2]
    assert "#1 ValueError: boom" in lines[4]
    assert lines[-1].endswith("FAILED ValueError: boom")
    long = h.EventRaised(name="e", input="x" * 500, timestamp=T0)
    assert len(format_history([long])[0]) < 120


def test_the_facade_has_daprs_names() -> None:
    import tether.workflow as wf

    for name in ("WorkflowRuntime", "DaprWorkflowClient", "DaprWorkflowContext",
                 "AsyncWorkflowContext", "WorkflowActivityContext", "WorkflowState",
                 "WorkflowStatus", "when_all", "when_any", "alternate_name", "RetryPolicy"):
        assert hasattr(wf, name), name
    assert issubclass(wf.WorkflowRuntime, wf.WorkflowRegistry)
    assert wf.WorkflowStatus.COMPLETED.value == "COMPLETED"
