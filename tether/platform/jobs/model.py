"""A job as Dapr's Jobs API defines it, read from its JSON, and when its triggers fall.

Dapr's body (``POST /v1.0-alpha1/jobs/{name}``, protojson of ``JobHTTPRequest``, so every
field also has its snake_case name): ``schedule`` (6-field cron, seconds first, or an
``@`` period such as ``@every 1m`` / ``@daily``; Tether also reads a bare Go duration as
``@every`` it), ``dueTime`` (RFC 3339 time, or a Go duration from now), ``repeats`` (how
many triggers in all), ``ttl`` (RFC 3339 time or Go duration: no trigger after it),
``data`` (any JSON value, POSTed to the app as it is), ``overwrite`` and ``failurePolicy``
(``{"drop": {}}`` or ``{"constant": {"interval": "1s", "maxRetries": 3}}``). At least one
of schedule and dueTime is required.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tether.platform import errors
from tether.platform.components import metadata
from tether.platform.components.schedule import Schedule, local_zone
from tether.platform.errors import ApiError
from tether.platform.events import format_time
from tether.platform.pubsub.delivery_time import DeliveryTimeError
from tether.platform.pubsub.delivery_time import parse_time as parse_rfc3339

#: Dapr's policy when a job has none: 3 retries, one second apart
DEFAULT_INTERVAL = 1.0
DEFAULT_MAX_RETRIES = 3
#: the largest ``repeats`` (a protobuf uint32)
MAX_REPEATS = 2**32 - 1
#: ``|`` separates the parts of Dapr's job keys; Dapr refuses it in names, and so do we
FORBIDDEN_IN_NAME = "|"

_FIELDS = {
    "schedule": "schedule", "dueTime": "dueTime", "due_time": "dueTime",
    "repeats": "repeats", "ttl": "ttl", "data": "data", "overwrite": "overwrite",
    "failurePolicy": "failurePolicy", "failure_policy": "failurePolicy", "name": "name",
}


def _bad(problem: str) -> ApiError:
    return ApiError(400, errors.SCHEDULER_SCHEDULE_JOB, f"failed to schedule job due to: {problem}")


def malformed(problem: str) -> ApiError:
    return ApiError(400, errors.MALFORMED_REQUEST, f"failed deserializing HTTP body: {problem}")


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """What a failed trigger gets: ``drop`` (nothing) or ``constant`` (the same trigger again
    after ``interval`` seconds, up to ``max_retries`` times; None: without limit)."""

    kind: str
    interval: float = 0.0
    max_retries: int | None = None

    def retries(self, attempt: int) -> bool:
        """Whether a trigger whose attempt number ``attempt`` (0: the first) failed is tried
        again."""
        if self.kind != "constant":
            return False
        return self.max_retries is None or attempt < self.max_retries

    def to_json(self) -> dict[str, Any]:
        if self.kind == "drop":
            return {"drop": {}}
        constant: dict[str, Any] = {"interval": _go_seconds(self.interval)}
        if self.max_retries is not None:
            constant["maxRetries"] = self.max_retries
        return {"constant": constant}

    @classmethod
    def from_json(cls, value: Any) -> FailurePolicy:
        if not isinstance(value, dict) or len(value) != 1:
            raise _bad("failurePolicy must be {\"drop\": {}} or {\"constant\": {...}}")
        (kind, options), = value.items()
        if kind == "drop":
            return cls("drop")
        if kind != "constant" or not isinstance(options, dict):
            raise _bad(f"failurePolicy {kind!r} is not drop or constant")
        unknown = set(options) - {"interval", "maxRetries", "max_retries"}
        if unknown:
            raise _bad(f"failurePolicy.constant has no field {sorted(unknown)[0]!r}")
        interval = 0.0
        if options.get("interval") is not None:
            text = options["interval"]
            if not isinstance(text, str):
                raise _bad("failurePolicy.constant.interval must be a duration like 1s")
            try:
                interval = metadata.parse_duration(text)
            except metadata.DurationError as exc:
                raise _bad(f"failurePolicy.constant.interval {exc}") from None
        retries = options.get("maxRetries", options.get("max_retries"))
        if retries is not None and (type(retries) is not int or not 0 <= retries <= MAX_REPEATS):
            raise _bad("failurePolicy.constant.maxRetries must be a non-negative integer")
        return cls("constant", interval, retries)


#: the policy of a job that names none
DEFAULT_POLICY = FailurePolicy("constant", DEFAULT_INTERVAL, DEFAULT_MAX_RETRIES)


def _go_seconds(seconds: float) -> str:
    """A duration as protobuf's JSON writes one (``1s``, ``0.500s``)."""
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{seconds:.3f}s"


def point_in_time(text: str, now: datetime.datetime, field: str) -> datetime.datetime:
    """``dueTime`` or ``ttl``: an RFC 3339 time, or a Go duration from ``now``."""
    try:
        return parse_rfc3339(text)
    except DeliveryTimeError:
        pass
    try:
        seconds = metadata.parse_duration(text)
    except metadata.DurationError:
        raise _bad(f"{field} {text!r} is neither an RFC 3339 time (2026-11-24T21:00:00Z) nor "
                   "a duration (10s, 1h30m)") from None
    try:
        return now + datetime.timedelta(seconds=seconds)
    except OverflowError:
        raise _bad(f"{field} {text!r} is too far away") from None


def parse_schedule(text: str) -> Schedule:
    """Dapr's schedule; a bare Go duration is read as ``@every`` it."""
    spec = text.strip()
    if spec and not spec.startswith("@") and len(spec.split()) == 1:
        try:
            metadata.parse_duration(spec)
            spec = f"@every {spec}"
        except metadata.DurationError:
            pass
    try:
        return Schedule.parse(spec, local_zone(), "Local")
    except metadata.MetadataError as exc:
        raise _bad(f"schedule {exc.problem}") from None


@dataclass(frozen=True, slots=True)
class Job:
    """One job's definition, as given (so ``GET`` answers what was scheduled)."""

    name: str
    schedule: str | None = None
    due_time: str | None = None
    repeats: int | None = None
    ttl: str | None = None
    #: the JSON text of ``data``; None: the job has none (the app gets an empty body)
    data: str | None = None
    failure_policy: FailurePolicy | None = None

    @property
    def policy(self) -> FailurePolicy:
        return self.failure_policy or DEFAULT_POLICY

    def to_json(self) -> dict[str, Any]:
        """Dapr's ``Job`` in JSON, fields that were not given left out."""
        body: dict[str, Any] = {"name": self.name}
        if self.schedule is not None:
            body["schedule"] = self.schedule
        if self.repeats is not None:
            body["repeats"] = self.repeats
        if self.due_time is not None:
            body["dueTime"] = self.due_time
        if self.ttl is not None:
            body["ttl"] = self.ttl
        if self.data is not None:
            body["data"] = json.loads(self.data)
        if self.failure_policy is not None:
            body["failurePolicy"] = self.failure_policy.to_json()
        return body

    @classmethod
    def from_json(cls, name: str, body: Mapping[str, Any]) -> Job:
        """A stored definition back (it was checked when scheduled)."""
        policy = body.get("failurePolicy")
        return cls(
            name=name, schedule=body.get("schedule"), due_time=body.get("dueTime"),
            repeats=body.get("repeats"), ttl=body.get("ttl"),
            data=None if "data" not in body else json.dumps(body["data"], separators=(",", ":"),
                                                             ensure_ascii=False),
            failure_policy=None if policy is None else FailurePolicy.from_json(policy),
        )


def check_name(name: str) -> str:
    name = name.strip()
    if not name or FORBIDDEN_IN_NAME in name:
        raise ApiError(400, errors.SCHEDULER_JOB_NAME_EMPTY, "Name is empty")
    return name


def _text(body: Mapping[str, Any], field: str) -> str | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise malformed(f"{field} must be a string, not {json.dumps(value)}")
    return value


def read_request(name: str, body: Any) -> tuple[Job, bool]:
    """The job a ``POST`` body asks for and its ``overwrite`` flag; ApiError in Dapr's shape
    (400) when it cannot be one."""
    if not isinstance(body, dict):
        raise malformed("the body must be a JSON object")
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if key not in _FIELDS:
            raise malformed(f"unknown field {key!r}")
        fields[_FIELDS[key]] = value
    if fields.get("name"):
        raise ApiError(400, errors.SCHEDULER_JOB_NAME, "Set the job name in the url only")
    name = check_name(name)
    schedule, due_time = _text(fields, "schedule"), _text(fields, "dueTime")
    if schedule is None and due_time is None:
        raise ApiError(400, errors.SCHEDULER_SCHEDULE_EMPTY, "Schedule is empty")
    repeats = fields.get("repeats")
    if repeats is not None and (type(repeats) is not int or not 0 <= repeats <= MAX_REPEATS):
        raise malformed("repeats must be a non-negative integer")
    overwrite = fields.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise malformed("overwrite must be true or false")
    policy = fields.get("failurePolicy")
    job = Job(
        name=name, schedule=schedule, due_time=due_time, repeats=repeats or None,
        ttl=_text(fields, "ttl"),
        data=None if "data" not in fields or fields["data"] is None
        else json.dumps(fields["data"], separators=(",", ":"), ensure_ascii=False),
        failure_policy=None if policy is None else FailurePolicy.from_json(policy),
    )
    return job, overwrite


@dataclass(frozen=True, slots=True)
class Timeline:
    """When a job's triggers fall, from its definition and the moment it was scheduled."""

    job: Job
    created: datetime.datetime
    schedule: Schedule | None
    first: datetime.datetime
    expires: datetime.datetime | None

    @classmethod
    def of(cls, job: Job, created: datetime.datetime) -> Timeline:
        """Raises ApiError (400) for a schedule, dueTime or ttl that cannot be used."""
        schedule = parse_schedule(job.schedule) if job.schedule is not None else None
        if job.due_time is not None:
            first = point_in_time(job.due_time, created, "dueTime")
        else:
            assert schedule is not None
            try:  # croniter gives up on a date that never comes (0 0 0 31 2 *)
                first = schedule.next_after(created)
            except Exception as exc:
                raise _bad(f"schedule {job.schedule!r} never fires: {exc}") from None
        expires = point_in_time(job.ttl, created, "ttl") if job.ttl is not None else None
        return cls(job, created, schedule, first, expires)

    def check(self, now: datetime.datetime) -> None:
        """A job that could never fire is refused when scheduled."""
        if self.expires is not None and self.expires <= max(now, self.first):
            raise _bad(f"ttl {self.job.ttl!r} ends before the first trigger at "
                       f"{format_time(self.first)}")

    def after(self, count: int, previous: datetime.datetime,
              now: datetime.datetime) -> datetime.datetime | None:
        """The time of trigger number ``count`` (0-based) given the previous one's, or None
        when the job has no more (repeats used up, one-shot, past its ttl). Ticks already
        past (the app's sidecars were all down) are skipped, not fired in a burst."""
        if self.job.repeats is not None and count >= self.job.repeats:
            return None
        if self.schedule is None:
            return None
        try:
            following = self.schedule.next_after(previous)
            if following < now:
                following = self.schedule.next_after(now)
        except Exception:  # no further date (croniter's search gave up): the job is over
            return None
        if self.expires is not None and following > self.expires:
            return None
        return following

