"""The workflow engine made durable on a broker and a state store (docs/workflows.md, "How
the engine runs").

The pure engine (tether.platform.workflows) turns history events into new history and
actions; this package carries them: orchestration events are CloudEvents keyed by instance
id on one topic (so one worker owns an instance at a time), activity tasks go to another
topic consumed by any worker, history and instance metadata live in a state store, and every
step's actions leave through that store's transactional outbox.

Modules: ``names`` (topics, groups and keys), ``codec`` (CloudEvents in and out),
``instances`` (history and metadata in the state store), ``sender`` (a step's actions as
outbox records), ``client`` (DaprWorkflowClient), ``config`` (where the broker and store
come from: ``choose_components``), ``backend`` (the broker and store of the workflow
management API) and ``service`` (that API's operations, for the sidecar's HTTP routes).
The workers that run on them (orchestrator, activities) and WorkflowRuntime are in
:mod:`tether.workers.workflows`.
"""

from tether.platform.workflows.durable.client import (
    AsyncWorkflowClient,
    DaprWorkflowClient,
    WorkflowState,
)
from tether.platform.workflows.durable.config import (
    ComponentChoiceError,
    RuntimeConfig,
    WorkflowComponents,
    choose_components,
)
from tether.platform.workflows.durable.errors import (
    WorkflowAlreadyExistsError,
    WorkflowNotFinishedError,
    WorkflowNotFoundError,
    WorkflowNotRegisteredError,
)
from tether.platform.workflows.durable.names import DEFAULT_NAMESPACE, Names, namespace_for

__all__ = [
    "DEFAULT_NAMESPACE", "AsyncWorkflowClient", "ComponentChoiceError", "DaprWorkflowClient",
    "Names", "RuntimeConfig", "WorkflowAlreadyExistsError", "WorkflowComponents",
    "WorkflowNotFinishedError", "WorkflowNotFoundError", "WorkflowNotRegisteredError",
    "WorkflowState", "choose_components", "namespace_for",
]
