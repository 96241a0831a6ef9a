"""JSON payloads: every input, output and event value is stored and sent as JSON text."""

from __future__ import annotations

import json
from typing import Any

from tether.platform.workflows.errors import SerializationError


def encode(value: Any, what: str) -> str | None:
    """JSON text for a value (None stays None: no payload); `what` names it in the error."""
    if value is None:
        return None
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"{what} must be JSON-serialisable, got {type(value).__name__}: {exc}") from exc


def decode(text: str | None) -> Any:
    return None if text is None else json.loads(text)
