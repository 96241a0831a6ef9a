"""The job model without processes: Dapr's body read, and when triggers fall."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tether.platform.errors import ApiError
from tether.platform.jobs import DEFAULT_POLICY, FailurePolicy, Timeline, read_request

NOW = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


def test_snake_case_and_camel_case_are_both_read() -> None:
    job, overwrite = read_request("a", {"due_time": "10s", "failure_policy": {
        "constant": {"max_retries": 2, "interval": "500ms"}}, "overwrite": True})
    assert overwrite and job.due_time == "10s"
    assert job.policy == FailurePolicy("constant", 0.5, 2)
    assert read_request("b", {"schedule": "@daily"})[0].policy == DEFAULT_POLICY


def test_repeats_end_a_schedule_and_a_due_time_starts_it() -> None:
    job, _ = read_request("a", {"schedule": "@every 2s", "dueTime": "5s", "repeats": 2})
    timeline = Timeline.of(job, NOW)
    assert timeline.first == NOW + timedelta(seconds=5)
    second = timeline.after(1, timeline.first, NOW)
    assert second is not None and second > timeline.first
    assert timeline.after(2, second, NOW) is None


def test_a_one_shot_job_has_no_second_trigger_and_a_ttl_stops_a_schedule() -> None:
    once = Timeline.of(read_request("a", {"dueTime": "2026-03-02T00:00:00Z"})[0], NOW)
    assert once.first == datetime(2026, 3, 2, tzinfo=UTC)
    assert once.after(1, once.first, NOW) is None
    ttl = Timeline.of(read_request("b", {"schedule": "@every 1h", "ttl": "90m"})[0], NOW)
    assert ttl.after(1, ttl.first, NOW) is None


@pytest.mark.parametrize("body", [
    {"schedule": "0 0 0 31 2 *"},  # February 31st never comes
    {"schedule": "* * *"},
    {"dueTime": "999999999999h"},
    {"schedule": "@daily", "ttl": "1s", "dueTime": "1h"},
])
def test_schedules_that_cannot_fire_are_refused(body: dict[str, str]) -> None:
    job, _ = read_request("a", body)
    with pytest.raises(ApiError) as caught:
        Timeline.of(job, NOW).check(NOW)
    assert caught.value.status == 400
