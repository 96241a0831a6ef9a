"""What every route reads of an HTTP request the same way: ``metadata.*`` query
parameters and the W3C trace headers."""

from __future__ import annotations

from aiohttp import web

METADATA_PREFIX = "metadata."
TRACE_HEADERS = ("traceparent", "tracestate")


def request_metadata(request: web.Request) -> dict[str, str]:
    """``?metadata.key=value`` parameters, prefix removed (names are case-sensitive)."""
    return {
        name[len(METADATA_PREFIX):]: value
        for name, value in request.query.items()
        if name.startswith(METADATA_PREFIX)
    }


def trace_headers(request: web.Request) -> dict[str, str]:
    return {h: request.headers[h] for h in TRACE_HEADERS if request.headers.get(h)}
