"""Errors of the workflow client and runtime (the HTTP API maps them to Dapr's codes)."""

from __future__ import annotations

from tether.platform.workflows.errors import WorkflowError, WorkflowNotRegisteredError


class WorkflowAlreadyExistsError(WorkflowError):
    """An instance with this id exists and has not finished: a 409 at the HTTP API."""

    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(f"a workflow instance with id {instance_id!r} already exists "
                         f"and is {status}")
        self.instance_id = instance_id
        self.status = status


class WorkflowNotFoundError(WorkflowError, LookupError):
    """No instance with this id."""

    def __init__(self, instance_id: str) -> None:
        super().__init__(f"no workflow instance with id {instance_id!r}")
        self.instance_id = instance_id


class WorkflowNotFinishedError(WorkflowError):
    """Purge of an instance that is still running (only finished instances are purged)."""

    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(f"workflow instance {instance_id!r} is {status}: only COMPLETED, "
                         "FAILED or TERMINATED instances can be purged")
        self.instance_id = instance_id
        self.status = status


__all__ = ["WorkflowAlreadyExistsError", "WorkflowNotFinishedError", "WorkflowNotFoundError",
           "WorkflowNotRegisteredError"]
