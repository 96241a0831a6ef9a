"""What every route reads of an HTTP request the same way: ``metadata.*`` query
parameters, the W3C trace headers and other header values.

aiohttp keeps header bytes that are not UTF-8 as surrogate escapes, which no event, store or
answer can carry; a header is therefore read through :func:`header`, which refuses such a
value with a 400 (the trace headers, which are ASCII by their spec, are dropped instead:
a broken trace context starts a new trace, as in Dapr).
"""

from __future__ import annotations

from aiohttp import web

from tether.platform import errors
from tether.platform.errors import ApiError

METADATA_PREFIX = "metadata."
TRACE_HEADERS = ("traceparent", "tracestate")
#: where the tracing middleware keeps the W3C context of the request's server span
TRACE_KEY = web.RequestKey("tether.trace", dict[str, str])


def request_metadata(request: web.Request) -> dict[str, str]:
    """``?metadata.key=value`` parameters, prefix removed (names are case-sensitive)."""
    return {
        name[len(METADATA_PREFIX):]: value
        for name, value in request.query.items()
        if name.startswith(METADATA_PREFIX)
    }


def header(request: web.Request, name: str) -> str | None:
    """The header's value (None when absent); 400 for bytes that are not UTF-8 text."""
    value = request.headers.get(name)
    if value is not None and not _is_text(value):
        raise ApiError(400, errors.MALFORMED_REQUEST, f"the {name} header is not UTF-8 text")
    return value


def trace_headers(request: web.Request) -> dict[str, str]:
    """The W3C context the call's work continues: its server span's when tracing is on
    (tether/sidecar/middlewares.py), else ``traceparent`` / ``tracestate`` as given."""
    traced = request.get(TRACE_KEY)
    return incoming_trace(request) if traced is None else traced


def incoming_trace(request: web.Request) -> dict[str, str]:
    """``traceparent`` / ``tracestate`` as given; a value that is not ASCII is not a trace
    context (W3C) and is left out."""
    found = {h: request.headers.get(h) for h in TRACE_HEADERS}
    return {h: v for h, v in found.items() if v and v.isascii()}


def _is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:  # a surrogate escape: the raw bytes were not UTF-8
        return False
    return True
