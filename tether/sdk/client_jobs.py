"""The Jobs API on :class:`tether.Client`: ``schedule_job_alpha1``, ``get_job_alpha1`` and
``delete_job_alpha1`` over the sidecar's ``/v1.0-alpha1/jobs`` API, named as in Dapr's
Python SDK, plus ``list_jobs`` (Tether's own list). A job's ``data`` is any JSON value
(Dapr's SDK takes a protobuf ``Any``; over HTTP it is JSON) and reaches the app as the body
of ``POST /job/{name}`` (docs/jobs.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tether.sdk.client_core import ClientBase, operation
from tether.sdk.client_errors import TetherApiError
from tether.sdk.client_http import Call, Reply, segment
from tether.sdk.client_plan import Plan

__all__ = ["ConstantFailurePolicy", "DropFailurePolicy", "Job"]

PREFIX = "/v1.0-alpha1/jobs"


@dataclass(frozen=True, slots=True)
class DropFailurePolicy:
    """A failed trigger is not retried."""


@dataclass(frozen=True, slots=True)
class ConstantFailurePolicy:
    """A failed trigger is tried again every ``interval_seconds``, at most ``max_retries``
    times (None: without limit). Dapr's default for a job without a policy: 3 retries, 1 s
    apart."""

    max_retries: int | None = None
    interval_seconds: float | None = None


FailurePolicy = DropFailurePolicy | ConstantFailurePolicy


@dataclass(frozen=True, slots=True)
class Job:
    """A job as Dapr's SDK describes it: at least one of ``schedule`` (``@every 1m``,
    ``@daily``, 6-field cron with seconds first) and ``due_time`` (RFC 3339 or a duration
    such as ``10s``)."""

    name: str
    schedule: str | None = None
    repeats: int | None = None
    due_time: str | None = None
    ttl: str | None = None
    data: Any = None
    failure_policy: FailurePolicy | None = None
    #: Tether's, filled by list_jobs: when the next trigger is due (RFC 3339), how many
    #: triggers came before it
    next_trigger: str | None = None
    triggered: int | None = None

    def to_body(self, overwrite: bool) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for key, value in (("schedule", self.schedule), ("repeats", self.repeats),
                           ("dueTime", self.due_time), ("ttl", self.ttl),
                           ("data", self.data)):
            if value is not None:
                body[key] = value
        policy = self.failure_policy
        if isinstance(policy, DropFailurePolicy):
            body["failurePolicy"] = {"drop": {}}
        elif isinstance(policy, ConstantFailurePolicy):
            constant: dict[str, Any] = {}
            if policy.max_retries is not None:
                constant["maxRetries"] = policy.max_retries
            if policy.interval_seconds is not None:
                constant["interval"] = f"{policy.interval_seconds}s"
            body["failurePolicy"] = {"constant": constant}
        if overwrite:
            body["overwrite"] = True
        return body

    @classmethod
    def from_json(cls, body: Any) -> Job:
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise TetherApiError(200, None, f"unexpected job {body!r}")
        policy: FailurePolicy | None = None
        raw = body.get("failurePolicy")
        if isinstance(raw, dict) and "drop" in raw:
            policy = DropFailurePolicy()
        elif isinstance(raw, dict) and isinstance(raw.get("constant"), dict):
            constant = raw["constant"]
            interval = constant.get("interval")
            policy = ConstantFailurePolicy(
                constant.get("maxRetries"),
                float(interval.removesuffix("s")) if isinstance(interval, str) else None)
        return cls(body["name"], body.get("schedule"), body.get("repeats"),
                   body.get("dueTime"), body.get("ttl"), body.get("data"), policy,
                   body.get("nextTrigger"), body.get("triggered"))


def _path(name: str) -> str:
    return f"{PREFIX}/{segment(name)}"


def _job(reply: Reply) -> Job:
    return Job.from_json(reply.json())


class JobsMixin(ClientBase):
    """The Jobs API for both clients."""

    @operation
    def schedule_job_alpha1(self, job: Job, overwrite: bool = False) -> Plan[None]:
        """``POST /v1.0-alpha1/jobs/{name}``: store the job; the app gets ``POST
        /job/{name}`` at each trigger. TetherApiError 409 when it exists and ``overwrite``
        is false, 400 for a schedule the sidecar cannot use."""
        yield Call("POST", _path(job.name), {}, {"Content-Type": "application/json"},
                   json.dumps(job.to_body(overwrite)).encode())

    @operation
    def get_job_alpha1(self, name: str) -> Plan[Job]:
        """``GET /v1.0-alpha1/jobs/{name}``: the job as scheduled (TetherApiError 404 when
        there is none: never scheduled, deleted, or done)."""
        return _job((yield Call("GET", _path(name), {}, {}, b"")))

    @operation
    def delete_job_alpha1(self, name: str) -> Plan[None]:
        """``DELETE /v1.0-alpha1/jobs/{name}`` (an unknown job is fine, as in Dapr)."""
        yield Call("DELETE", _path(name), {}, {}, b"")

    @operation
    def list_jobs(self) -> Plan[list[Job]]:
        """Tether's ``GET /v1.0-alpha1/jobs``: the app's jobs, by name."""
        body = (yield Call("GET", PREFIX, {}, {}, b"")).json()
        jobs = body.get("jobs") if isinstance(body, dict) else None
        if not isinstance(jobs, list):
            raise TetherApiError(200, None, f"unexpected job list {body!r}")
        return [Job.from_json(job) for job in jobs]
