"""Errors of the workflow engine, shaped like durabletask's so Dapr code that catches them ports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tether.platform.errors import TetherError


@dataclass(frozen=True)
class FailureDetails:
    """Why a task or a workflow failed; stored in history and shown by the status API."""

    error_type: str
    message: str
    stack_trace: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"errorType": self.error_type, "message": self.message,
                "stackTrace": self.stack_trace}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FailureDetails:
        return cls(str(data["errorType"]), str(data["message"]), data.get("stackTrace"))

    @classmethod
    def from_exception(cls, exc: BaseException) -> FailureDetails:
        import traceback

        stack = "".join(traceback.format_exception(exc))
        return cls(type(exc).__name__, str(exc), stack)


class WorkflowError(TetherError):
    """Base of the engine's own errors."""


class TaskFailedError(WorkflowError):
    """Raised into a workflow when an activity or a child workflow failed; catchable there."""

    def __init__(self, message: str, details: FailureDetails) -> None:
        super().__init__(message)
        self.details = details


class NonDeterminismError(WorkflowError):
    """The workflow code, replayed, did something different from what its history records."""


class WorkflowNotRegisteredError(WorkflowError):
    """An instance names a workflow (or calls an activity) that no registry knows."""


class SerializationError(WorkflowError, TypeError):
    """A workflow or activity input, output, or event payload is not JSON-serialisable."""


class InvalidHistoryError(WorkflowError):
    """The stored history cannot be decoded or is inconsistent (a bug or a corrupted store)."""
