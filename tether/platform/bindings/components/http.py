"""``bindings.http``: one HTTP request per call to the component's ``url``, as Dapr's does.

The operation is the method (``create`` is POST, kept for Dapr's backward compatibility);
request metadata ``path`` is appended to ``url``, and every metadata key starting with a
capital letter is sent as a header (Dapr's rule, so ``Content-Type`` and ``Authorization``
are headers while ``path`` is not). The answer carries the body as data and ``statusCode``,
``status`` and the response headers as metadata. With ``errorIfNot2XX`` (default true) a
non-2xx answer is the call's failure (500), as in Dapr.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

import aiohttp

from tether.platform.bindings.binding import (
    CREATE,
    DELETE,
    GET,
    Binding,
    BindingFailedError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
)
from tether.platform.components import Component, metadata

#: Dapr's default cap on a response body (``maxResponseBodySize``)
MAX_RESPONSE_BODY = 100 << 20
#: how long connecting may take (Dapr's dialer and TLS handshake timeouts)
CONNECT_TIMEOUT = 15.0
JSON_UTF8 = "application/json; charset=utf-8"
#: operations that send the data as the request body
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
#: trace headers Dapr passes on from lowercase metadata keys
_TRACE_KEYS = ("traceparent", "tracestate", "baggage")
#: Dapr's mTLS fields, which Tether does not support yet (refused, not silently ignored)
_UNSUPPORTED = ("mtlsRootCA", "mtlsClientCert", "mtlsClientKey", "mtlsRenegotiation")


def _canonical(name: str) -> str:
    """Go's canonical header name (``content-type`` -> ``Content-Type``), which Dapr's
    response metadata keys are."""
    return re.sub(r"(^|-)([a-z])", lambda m: m.group(1) + m.group(2).upper(), name.lower())


class HttpBinding:
    """The output side: one :class:`aiohttp.ClientSession`, opened at start."""

    operations = frozenset({CREATE, GET, "head", "post", "put", "patch", DELETE, "options",
                            "trace"})

    def __init__(self, url: str, *, error_if_not_2xx: bool, timeout: float | None,
                 token: tuple[str, str] | None) -> None:
        self.url = url
        self.error_if_not_2xx = error_if_not_2xx
        self.timeout = timeout
        self.token = token
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout, connect=CONNECT_TIMEOUT),
                auto_decompress=True,
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self, request: BindingRequest, method: str) -> dict[str, str]:
        given = request.metadata
        headers: dict[str, str] = {}
        if method in _WITH_BODY and "Content-Type" not in given:
            headers["Content-Type"] = JSON_UTF8
        if "Accept" not in given:
            headers["Accept"] = JSON_UTF8
        if self.token is not None:
            headers[self.token[0]] = self.token[1]
        for key, value in given.items():
            if key[:1].isascii() and key[:1].isupper():
                headers[key] = value
        for key in _TRACE_KEYS:
            if given.get(key):
                headers[key] = given[key]
        return headers

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        if self._session is None:
            raise BindingFailedError("the http binding is not started")
        method = request.operation.upper()
        if method == "CREATE":
            method = "POST"
        url = self.url
        if path := request.metadata.get("path"):
            url = url.rstrip("/") + "/" + path.lstrip("/")
        error_if_not_2xx = self.error_if_not_2xx
        if request.metadata.get("errorIfNot2XX"):
            error_if_not_2xx = metadata.is_truthy(request.metadata["errorIfNot2XX"])
        try:
            async with self._session.request(
                method, url, headers=self._headers(request, method),
                data=request.data if method in _WITH_BODY else None,
                allow_redirects=True,
            ) as response:
                body = await _read(response.content)
                status, reason = response.status, response.reason or ""
                answer = _metadata(status, reason, response.headers)
                content_type = response.headers.get("Content-Type")
        except (aiohttp.InvalidURL, ValueError) as exc:
            # a path that makes no URL, a header value with a line break
            raise BindingRequestError(f"invalid request to {url!r}: {exc}") from None
        except TimeoutError:
            raise BindingFailedError(f"{method} {url}: no answer within {self.timeout}s") from None
        except aiohttp.ClientError as exc:
            raise BindingFailedError(f"{method} {url}: {exc}") from exc
        if error_if_not_2xx and not 200 <= status < 300:
            raise BindingFailedError(f"received status code {status}")
        return BindingResponse(data=body, metadata=answer, content_type=content_type)


async def _read(stream: aiohttp.StreamReader) -> bytes:
    """The body up to :data:`MAX_RESPONSE_BODY` (the rest is dropped, as Dapr does)."""
    body = bytearray()
    async for chunk in stream.iter_chunked(1 << 16):
        body += chunk[:MAX_RESPONSE_BODY - len(body)]
        if len(body) >= MAX_RESPONSE_BODY:
            break
    return bytes(body)


def _metadata(status: int, reason: str, headers: Mapping[str, str]) -> dict[str, str]:
    """``statusCode``, ``status`` (Go's ``"200 OK"``) and the headers, repeated ones joined
    with ``", "``, as Dapr returns them."""
    out = {"statusCode": str(status), "status": f"{status} {reason}".strip()}
    joined: dict[str, list[str]] = {}
    for name, value in headers.items():
        joined.setdefault(_canonical(name), []).append(value)
    out.update({name: ", ".join(values) for name, values in joined.items()})
    return out


def build(component: Component) -> Binding:
    url = metadata.required(component, "url", "the http(s) endpoint to call")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise metadata.MetadataError("url", f"{url!r} must be an http:// or https:// URL")
    for field in _UNSUPPORTED:
        if metadata.text(component, field) is not None:
            raise metadata.MetadataError(field, "is not supported by Tether yet")
    error_if_not_2xx = True
    if (value := metadata.text(component, "errorIfNot2XX")) is not None:
        error_if_not_2xx = metadata.is_truthy(value)
    timeout = None
    if metadata.text(component, "responseTimeout") is not None:
        timeout = metadata.duration(component, "responseTimeout", 0)
    token_value = metadata.text(component, "securityToken")
    token_header = metadata.text(component, "securityTokenHeader")
    token = (token_header, token_value) if token_value and token_header else None
    return Binding(name=component.name, type=component.type,
                   output=HttpBinding(url, error_if_not_2xx=error_if_not_2xx, timeout=timeout,
                                      token=token))
