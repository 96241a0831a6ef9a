"""The Python SDK: an in-process app that subscribes and publishes without a sidecar.

See docs/sdk.md.
"""

from .app import App
from .channel import Drop, InProcessChannel, Retry
from .client import AsyncClient, Client, TetherApiError

__all__ = [
    "App", "AsyncClient", "Client", "Drop", "InProcessChannel", "Retry", "TetherApiError",
]
