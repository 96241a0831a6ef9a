"""The event-sourced history of a workflow instance.

Every event is a small dataclass with a stable `to_dict()` / `event_from_dict()` form (plain
JSON types: payloads are JSON text, times are ISO 8601 UTC strings), because the runtime stores
history in a state store and sends events on the broker. The events and their fields follow
durabletask's history so the engine reads like Dapr's.

Task ids (`task_id`) number the durable steps a workflow schedules (activities, timers, child
workflows), in the order the code schedules them; replay relies on that order.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from tether.platform.workflows.errors import FailureDetails, InvalidHistoryError


class RuntimeStatus(enum.StrEnum):
    """An instance's status, with Dapr's `runtimeStatus` names."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TERMINATED = "TERMINATED"
    SUSPENDED = "SUSPENDED"
    CONTINUED_AS_NEW = "CONTINUED_AS_NEW"

    @property
    def is_terminal(self) -> bool:
        return self in (RuntimeStatus.COMPLETED, RuntimeStatus.FAILED, RuntimeStatus.TERMINATED)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _dt_to_str(value: datetime) -> str:
    if value.tzinfo is None:  # naive times are taken as UTC, as Dapr's SDK does
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _dt_from_str(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# public names for the runtime (the underscored ones stay as aliases)
dt_to_str = _dt_to_str
dt_from_str = _dt_from_str


@dataclass(frozen=True)
class ParentInstance:
    """The workflow that started a child workflow, and the task id that waits for it."""

    name: str
    instance_id: str
    task_id: int

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "instance_id": self.instance_id, "task_id": self.task_id}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ParentInstance:
        return cls(str(data["name"]), str(data["instance_id"]), int(data["task_id"]))


@dataclass(kw_only=True)
class HistoryEvent:
    """Base of all history events. `timestamp` is when the event was created (informational:
    the workflow's clock comes from OrchestratorStarted only)."""

    timestamp: datetime = field(default_factory=utcnow)

    _types: ClassVar[dict[str, type[HistoryEvent]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        HistoryEvent._types[cls.__name__] = cls

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": type(self).__name__}
        for f in dataclasses.fields(self):
            out[f.name] = _encode_field(getattr(self, f.name))
        return out


def _encode_field(value: Any) -> Any:
    if isinstance(value, datetime):
        return _dt_to_str(value)
    if isinstance(value, FailureDetails | ParentInstance):
        return value.to_dict()
    if isinstance(value, enum.Enum):
        return value.value
    return value


# fields that are not plain JSON values, decoded by name
_DATETIME_FIELDS = frozenset({"timestamp", "fire_at", "scheduled_start"})


def event_from_dict(data: dict[str, Any]) -> HistoryEvent:
    """Rebuild an event from `to_dict()` output; unknown types or fields are an error."""
    try:
        cls = HistoryEvent._types[data["type"]]
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue  # a field added later keeps its default
            value = data[f.name]
            if value is None:
                kwargs[f.name] = None
            elif f.name in _DATETIME_FIELDS:
                kwargs[f.name] = _dt_from_str(value)
            elif f.name == "failure":
                kwargs[f.name] = FailureDetails.from_dict(value)
            elif f.name == "parent":
                kwargs[f.name] = ParentInstance.from_dict(value)
            elif f.name == "status":
                kwargs[f.name] = RuntimeStatus(value)
            else:
                kwargs[f.name] = value
        return cls(**kwargs)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidHistoryError(f"cannot decode history event {data!r}: {exc}") from exc


def history_to_list(events: list[HistoryEvent]) -> list[dict[str, Any]]:
    return [e.to_dict() for e in events]


def history_from_list(items: list[dict[str, Any]]) -> list[HistoryEvent]:
    return [event_from_dict(d) for d in items]


# --- lifecycle ---------------------------------------------------------------------------

@dataclass(kw_only=True)
class ExecutionStarted(HistoryEvent):
    """The first event of an instance (and of each continue-as-new generation).

    `first_task_id` lets a continued-as-new generation number its tasks after the previous
    generation's, so a late completion of an old task can never match a new one."""

    name: str
    instance_id: str
    input: str | None = None
    parent: ParentInstance | None = None
    scheduled_start: datetime | None = None
    generation: int = 0
    first_task_id: int = 0


@dataclass(kw_only=True)
class OrchestratorStarted(HistoryEvent):
    """Opens each execution step; its timestamp is the workflow's deterministic clock."""


@dataclass(kw_only=True)
class ExecutionCompleted(HistoryEvent):
    """The instance finished (COMPLETED, FAILED or CONTINUED_AS_NEW)."""

    status: RuntimeStatus
    output: str | None = None
    failure: FailureDetails | None = None


@dataclass(kw_only=True)
class ExecutionTerminated(HistoryEvent):
    """A terminate request; `recursive` also terminates running child workflows."""

    output: str | None = None
    recursive: bool = True


@dataclass(kw_only=True)
class ExecutionSuspended(HistoryEvent):
    reason: str | None = None


@dataclass(kw_only=True)
class ExecutionResumed(HistoryEvent):
    reason: str | None = None


# --- activities ----------------------------------------------------------------------------

@dataclass(kw_only=True)
class TaskScheduled(HistoryEvent):
    task_id: int
    name: str
    input: str | None = None
    app_id: str | None = None


@dataclass(kw_only=True)
class TaskCompleted(HistoryEvent):
    task_id: int
    result: str | None = None


@dataclass(kw_only=True)
class TaskFailed(HistoryEvent):
    task_id: int
    failure: FailureDetails


# --- timers --------------------------------------------------------------------------------

@dataclass(kw_only=True)
class TimerCreated(HistoryEvent):
    task_id: int
    fire_at: datetime


@dataclass(kw_only=True)
class TimerFired(HistoryEvent):
    task_id: int
    fire_at: datetime


# --- child workflows -----------------------------------------------------------------------

@dataclass(kw_only=True)
class SubOrchestrationCreated(HistoryEvent):
    task_id: int
    name: str
    instance_id: str
    input: str | None = None
    app_id: str | None = None


@dataclass(kw_only=True)
class SubOrchestrationCompleted(HistoryEvent):
    task_id: int
    result: str | None = None


@dataclass(kw_only=True)
class SubOrchestrationFailed(HistoryEvent):
    task_id: int
    failure: FailureDetails


# --- external events -----------------------------------------------------------------------

@dataclass(kw_only=True)
class EventRaised(HistoryEvent):
    """An external event; names match case-insensitively, as in Dapr."""

    name: str
    input: str | None = None
