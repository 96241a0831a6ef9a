"""The sidecar: Tether's Dapr-compatible HTTP API (docs/http-api.md)."""

from tether.platform.errors import ApiError
from tether.sidecar.app import DEFAULT_MAX_BODY_SIZE, create_app

__all__ = ["DEFAULT_MAX_BODY_SIZE", "ApiError", "create_app"]
