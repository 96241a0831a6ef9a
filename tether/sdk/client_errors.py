"""The errors a :class:`tether.Client` raises (docs/client.md)."""

from __future__ import annotations

import json
from typing import Any

from tether.platform.errors import TetherError


class TetherClientError(TetherError):
    """Base class of everything the client raises about the sidecar."""


class SidecarUnavailableError(TetherClientError, ConnectionError):
    """The sidecar could not be reached (refused, reset, timed out)."""


class TetherApiError(TetherClientError):
    """The sidecar answered with an error status.

    ``error_code`` and ``message`` come from Dapr's error body
    ``{"errorCode": "ERR_...", "message": "..."}``; a body of another shape leaves
    ``error_code`` None and puts the text in ``message``. ``body`` is the parsed JSON body
    (or None), for errors that carry more (bulk publish's ``failedEntries``).
    """

    def __init__(
        self, status: int, error_code: str | None, message: str, body: Any = None
    ) -> None:
        super().__init__(f"{status} {error_code or 'error'}: {message}")
        self.status = status
        self.error_code = error_code
        self.message = message
        self.body = body

    @classmethod
    def from_response(cls, status: int, reason: str, body: bytes) -> TetherApiError:
        parsed: Any = None
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            code = parsed.get("errorCode")
            message = parsed.get("message")
            if isinstance(code, str) or isinstance(message, str):
                return cls(
                    status,
                    code if isinstance(code, str) else None,
                    message if isinstance(message, str) else reason,
                    parsed,
                )
        text = body.decode("utf-8", "replace").strip()
        return cls(status, None, text or reason, parsed)
