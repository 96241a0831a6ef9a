"""The sidecar: Tether's Dapr-compatible HTTP API (docs/http-api.md)."""

from tether.platform.sidecar.app import DEFAULT_MAX_BODY_SIZE, create_app
from tether.platform.sidecar.errors import ApiError

__all__ = ["DEFAULT_MAX_BODY_SIZE", "ApiError", "create_app"]
