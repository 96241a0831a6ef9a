"""What the clients send and get back: a :class:`Call` (one HTTP request to the sidecar)
and its :class:`Reply`, with the helpers that quote their parts."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from multidict import CIMultiDict

from tether.sdk.client_errors import TetherApiError


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request to the sidecar; ``path`` is already quoted."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def target(self, base_path: str) -> str:
        query = urlencode(self.params, quote_via=quote) if self.params else ""
        return base_path + self.path + ("?" + query if query else "")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    reason: str
    body: bytes
    #: the response headers, looked up case-insensitively (``ETag``, ``metadata.*``)
    headers: Mapping[str, str] = field(default_factory=CIMultiDict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def error(self) -> TetherApiError:
        return TetherApiError.from_response(self.status, self.reason, self.body)


def segment(value: str) -> str:
    """One path segment (a component or key name), quoted so that it stays one segment."""
    return quote(value, safe="")


def metadata_params(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """``metadata`` as the ``metadata.*`` query parameters Dapr's HTTP API reads."""
    return {f"metadata.{name}": str(value) for name, value in (metadata or {}).items()}
