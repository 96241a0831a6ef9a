"""Service invocation on :class:`tether.Client`: ``invoke_method`` over the sidecar's
``/v1.0/invoke/{app-id}/method/{method}`` API (docs/invocation.md, docs/client.md).

Names, defaults and the answer follow Dapr's Python SDK over HTTP (its default invocation
protocol): ``http_verb`` defaults to GET, the body to empty, the Content-Type to
``application/json``; ``metadata`` are request headers and ``http_querystring`` query
parameters (both a mapping or (name, value) pairs, a name may repeat). As Dapr's SDK, a
non-2xx answer raises (:class:`InvokeMethodError`, a :class:`TetherApiError`), whether the
target app or the sidecar gave it; the error keeps the whole answer in ``response``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias
from urllib.parse import quote, urlencode

from tether.sdk.client_core import ClientBase, operation
from tether.sdk.client_errors import TetherApiError
from tether.sdk.client_http import Call, Reply, segment
from tether.sdk.client_plan import Plan, Send

__all__ = ["InvokeMethodError", "InvokeMethodResponse"]

#: Dapr's SDK sends this when the call names no Content-Type
DEFAULT_CONTENT_TYPE = "application/json"
DEFAULT_VERB = "GET"
#: the call's deadline for the sidecar (Tether's; a Dapr sidecar passes it to the app)
TIMEOUT_HEADER = "tether-invoke-timeout"
#: the HTTP request outlives the sidecar's deadline by this much, so that the sidecar's own
#: 504 ERR_DIRECT_INVOKE arrives rather than a client-side timeout
GRACE = 5.0
#: the characters a method path keeps unquoted: RFC 3986 pchar, '/', '?' and '%': the method
#: goes into the URL as given, as in Dapr's SDK (``orders?id=7`` carries a query, a method
#: given percent-encoded stays so)
PATH_SAFE = "/?%:@!$&'()*+,;=-._~"

Pairs: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class InvokeMethodResponse:
    """The answer of the invoked method, as Dapr's SDK gives it: ``data`` (bytes),
    ``text()``, ``json()``, ``content_type`` (the media type, without parameters),
    ``headers`` (each name to its list of values) and ``status_code``."""

    data: bytes
    content_type: str | None
    status_code: int
    #: the answer's headers as received, (name, value) pairs
    header_pairs: tuple[tuple[str, str], ...] = field(default=())

    @property
    def headers(self) -> dict[str, list[str]]:
        return self.get_headers(as_dict=True)  # type: ignore[return-value]

    def get_headers(self, as_dict: bool = False
                    ) -> dict[str, list[str]] | tuple[tuple[str, str], ...]:
        """The headers as Dapr's SDK returns them: a dict of lists, or the pairs."""
        if not as_dict:
            return self.header_pairs
        grouped: dict[str, list[str]] = {}
        for name, value in self.header_pairs:
            grouped.setdefault(name, []).append(value)
        return grouped

    def text(self) -> str:
        return self.data.decode()

    def json(self) -> Any:
        return json.loads(self.data)


class InvokeMethodError(TetherApiError):
    """A non-2xx answer to ``invoke_method``: ``status``, ``error_code`` (``ERR_DIRECT_INVOKE``
    when the sidecar could not make the call; None for most answers of the target app),
    ``message``, and ``response``, the answer itself."""

    def __init__(self, error: TetherApiError, response: InvokeMethodResponse) -> None:
        super().__init__(error.status, error.error_code, error.message, error.body)
        self.response = response


def _pairs(values: Pairs | None) -> list[tuple[str, str]]:
    if values is None:
        return []
    items = values.items() if isinstance(values, Mapping) else values
    return [(str(name), str(value)) for name, value in items]


def _body(data: bytes | str | bytearray | memoryview) -> bytes:
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"invoke_method sends bytes or str, not {type(data).__name__} "
                    "(json.dumps a value first)")


def seconds_header(timeout: float) -> str:
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a number of seconds above zero, got {timeout!r}")
    return f"{timeout:.3f}".rstrip("0").rstrip(".") + "s"


def invoke_call(app_id: str, method_name: str, data: bytes | str, content_type: str | None,
                metadata: Pairs | None, http_verb: str | None, http_querystring: Pairs | None,
                timeout: float | None) -> Call:
    """The request Dapr's SDK sends, plus Tether's deadline header when ``timeout`` is set."""
    path = f"/v1.0/invoke/{segment(app_id)}/method/{quote(method_name, safe=PATH_SAFE)}"
    query = _pairs(http_querystring)
    if query:  # in the path: a query name may repeat, which Call.params cannot say
        path += ("&" if "?" in path else "?") + urlencode(query, quote_via=quote)
    headers = dict(_pairs(metadata))
    headers["Content-Type"] = content_type or headers.get("Content-Type") or DEFAULT_CONTENT_TYPE
    if timeout is not None:
        headers[TIMEOUT_HEADER] = seconds_header(timeout)
    return Call((http_verb or DEFAULT_VERB).upper(), path, {}, headers, _body(data))


def response_of(reply: Reply) -> InvokeMethodResponse:
    pairs = tuple(reply.headers.items())
    content_type = reply.headers.get("Content-Type")
    media = content_type.split(";", 1)[0].strip() if content_type else None
    return InvokeMethodResponse(reply.body, media, reply.status, pairs)


class InvokeMixin(ClientBase):
    """Service invocation for both clients."""

    @operation
    def invoke_method(
        self,
        app_id: str,
        method_name: str,
        data: bytes | str = b"",
        content_type: str | None = None,
        metadata: Pairs | None = None,
        http_verb: str | None = None,
        http_querystring: Pairs | None = None,
        timeout: float | None = None,
    ) -> Plan[InvokeMethodResponse]:
        """Call ``method_name`` (a path, slashes kept) of the app ``app_id`` through the
        sidecar; the target's answer. ``timeout`` (seconds) is the call's deadline at the
        sidecar (a 504 ``ERR_DIRECT_INVOKE`` past it); the client's timeout otherwise. A
        non-2xx answer raises :class:`InvokeMethodError` (as Dapr's SDK raises)."""
        call = invoke_call(app_id, method_name, data, content_type, metadata, http_verb,
                           http_querystring, timeout)
        wait = None if timeout is None else max(timeout + GRACE, self.settings.timeout)
        reply: Reply = yield Send(call, wait)
        response = response_of(reply)
        if not reply.ok:
            raise InvokeMethodError(reply.error(), response)
        return response
