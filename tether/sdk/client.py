"""``tether.Client`` and ``tether.AsyncClient``: thin HTTP clients for a process that talks
to a Tether (or Dapr) sidecar (docs/client.md).

Each building block is a mixin in its own module, its methods written once for both
clients over one request core (``client_core.py``): pub/sub in ``client_pubsub.py``,
health/metadata/shutdown in ``client_meta.py``, secrets in ``client_secrets.py``, the lock
in ``client_lock.py``, configuration in ``client_configuration.py``, state in
``client_state.py``, workflows in ``client_workflow.py``, service invocation in
``client_invoke.py``. A new block adds its module and
its mixin to ``_Blocks`` below.
"""

from __future__ import annotations

from tether.sdk.client_actors import ActorResponse, ActorsMixin
from tether.sdk.client_bindings import BindingResponse, BindingsMixin
from tether.sdk.client_configuration import ConfigurationItem, ConfigurationMixin
from tether.sdk.client_core import AsyncCore, SyncCore
from tether.sdk.client_errors import SidecarUnavailableError, TetherApiError, TetherClientError
from tether.sdk.client_invoke import InvokeMethodError, InvokeMethodResponse, InvokeMixin
from tether.sdk.client_jobs import ConstantFailurePolicy, DropFailurePolicy, Job, JobsMixin
from tether.sdk.client_lock import (
    LockLostError,
    LockMixin,
    LockNotAcquiredError,
    UnlockStatus,
)
from tether.sdk.client_meta import MetaMixin
from tether.sdk.client_pubsub import FailedEntry, PublishEntry, PubSubMixin
from tether.sdk.client_secrets import SecretsMixin
from tether.sdk.client_settings import ClientSettings, resolve_settings
from tether.sdk.client_state import (
    BulkStateItem,
    StateItem,
    StateMixin,
    StateResponse,
    TransactionalStateOperation,
)
from tether.sdk.client_workflow import (
    GetWorkflowResponse,
    StartWorkflowResponse,
    WorkflowList,
    WorkflowMixin,
)

__all__ = [
    "ActorResponse",
    "AsyncClient",
    "BindingResponse",
    "BulkStateItem",
    "Client",
    "ClientSettings",
    "ConfigurationItem",
    "ConstantFailurePolicy",
    "DropFailurePolicy",
    "FailedEntry",
    "GetWorkflowResponse",
    "InvokeMethodError",
    "InvokeMethodResponse",
    "Job",
    "LockLostError",
    "LockNotAcquiredError",
    "PublishEntry",
    "SidecarUnavailableError",
    "StartWorkflowResponse",
    "StateItem",
    "StateResponse",
    "TetherApiError",
    "TetherClientError",
    "TransactionalStateOperation",
    "UnlockStatus",
    "WorkflowList",
    "resolve_settings",
]


class _Blocks(
    PubSubMixin, MetaMixin, SecretsMixin, LockMixin, ConfigurationMixin, StateMixin,
    WorkflowMixin, InvokeMixin, BindingsMixin, ActorsMixin, JobsMixin,
):
    """The methods of both clients."""


class Client(_Blocks, SyncCore):
    """A blocking client on one kept-alive HTTP connection.

    ``Client()`` finds the sidecar from the environment (``DAPR_HTTP_ENDPOINT``, else
    ``TETHER_HTTP_PORT`` / ``DAPR_HTTP_PORT`` on 127.0.0.1, else port 3500) and sends
    ``DAPR_API_TOKEN`` as ``dapr-api-token``; ``Client("http://host:3501",
    api_token=..., timeout=...)`` says so explicitly. Use it as a context manager, or call
    :meth:`close`.
    """


class AsyncClient(_Blocks, AsyncCore):
    """The asyncio client (aiohttp), with the same methods as :class:`Client`, awaited.
    Use ``async with AsyncClient() as client:``, or ``await client.close()``."""
