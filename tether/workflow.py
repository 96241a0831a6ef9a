"""Tether's workflow API, shaped like Dapr's `dapr.ext.workflow`, so that a Dapr workflow
module ports by changing its imports:

    from tether.workflow import DaprWorkflowContext, RetryPolicy, WorkflowActivityContext, ...

The engine lives in tether.platform.workflows; the broker runtime (WorkflowRuntime,
DaprWorkflowClient) in tether.platform.workflows.durable builds on WorkflowRegistry and the
executor there.
"""

from tether.platform.workflows.activity import WorkflowActivityContext
from tether.platform.workflows.authoring import WorkflowRegistry, alternate_name
from tether.platform.workflows.context import DaprWorkflowContext
from tether.platform.workflows.durable import AsyncWorkflowClient, DaprWorkflowClient, WorkflowState
from tether.platform.workflows.errors import (
    FailureDetails,
    NonDeterminismError,
    SerializationError,
    TaskFailedError,
    WorkflowNotRegisteredError,
)
from tether.platform.workflows.history import RuntimeStatus
from tether.platform.workflows.retry import RetryPolicy
from tether.platform.workflows.task import Task, when_all, when_any
from tether.workers.workflows import WorkflowRuntime

# Dapr's name for the status enum (its values are Dapr's runtimeStatus strings)
WorkflowStatus = RuntimeStatus
# Dapr's abstract context type, and the context of `async def` workflows: one implementation
WorkflowContext = DaprWorkflowContext
AsyncWorkflowContext = DaprWorkflowContext

__all__ = [
    "AsyncWorkflowClient", "AsyncWorkflowContext", "DaprWorkflowClient", "DaprWorkflowContext",
    "FailureDetails", "NonDeterminismError", "RetryPolicy", "SerializationError", "Task",
    "TaskFailedError", "WorkflowActivityContext", "WorkflowContext",
    "WorkflowNotRegisteredError", "WorkflowRegistry", "WorkflowRuntime", "WorkflowState",
    "WorkflowStatus", "alternate_name", "when_all", "when_any",
]
