"""Tether: a distributed application runtime for Python, built around a message broker."""

from importlib.metadata import PackageNotFoundError, version

from tether.platform.events import CloudEvent, InvalidCloudEventError

try:
    __version__ = version("tether")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

# imported last, so that anything the SDK imports can already read __version__
from tether.sdk import (
    Actor,
    App,
    AsyncClient,
    BindingEvent,
    Client,
    ConstantFailurePolicy,
    Drop,
    DropFailurePolicy,
    Job,
    Retry,
    TetherApiError,
)

__all__ = [
    "Actor", "App", "AsyncClient", "BindingEvent", "Client", "CloudEvent",
    "ConstantFailurePolicy", "Drop", "DropFailurePolicy", "InvalidCloudEventError", "Job",
    "Retry", "TetherApiError", "__version__",
]
