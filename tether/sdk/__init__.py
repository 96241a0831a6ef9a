"""The Python SDK: an in-process app that subscribes and publishes without a sidecar.

See docs/sdk.md.
"""

from tether.sdk.actors import Actor
from tether.sdk.app import App
from tether.sdk.bindings import BindingEvent
from tether.sdk.channel import Drop, InProcessChannel, Retry
from tether.sdk.client import AsyncClient, Client, TetherApiError
from tether.sdk.client_jobs import ConstantFailurePolicy, DropFailurePolicy, Job
from tether.sdk.methods import MethodRequest, MethodResponse

__all__ = [
    "Actor", "App", "AsyncClient", "BindingEvent", "Client", "ConstantFailurePolicy", "Drop",
    "DropFailurePolicy", "InProcessChannel", "Job", "MethodRequest", "MethodResponse", "Retry",
    "TetherApiError",
]
