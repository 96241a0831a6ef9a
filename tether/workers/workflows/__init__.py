"""The workflow workers: the orchestrator (one execution step per batch of an instance's
events), the activity worker, and :class:`WorkflowRuntime`, which runs both in a process."""

from tether.workers.workflows.runtime import WorkflowRuntime

__all__ = ["WorkflowRuntime"]
