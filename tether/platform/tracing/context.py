"""W3C trace context (``traceparent``) without OpenTelemetry: what every call needs even
when tracing is off, so it stays a few string operations.

``version-traceid-spanid-flags``: ``00-<32 hex>-<16 hex>-<2 hex>``. A call that comes
without one (or with one that is not valid) gets a new trace, as in Dapr.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = (TRACEPARENT, TRACESTATE)
#: a new context's flags when nothing records it (tracing off): not sampled
NOT_SAMPLED = "00"
_HEX = frozenset("0123456789abcdef")

#: the trace context the sidecar sends to the app for the work at hand (the delivery or
#: invocation span), when it differs from the event's own; set per task by the workers
_OUTGOING: ContextVar[Mapping[str, str] | None] = ContextVar("tether_outgoing_trace",
                                                              default=None)


def new_traceparent(flags: str = NOT_SAMPLED) -> str:
    """A new trace: random trace and span ids."""
    return f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-{flags}"


def is_valid(traceparent: str) -> bool:
    """Whether ``traceparent`` is one a W3C parser accepts (version 00's layout, or a
    later version's first four fields; ids not all zeros; version not ff)."""
    if len(traceparent) < 55 or traceparent[2] != "-" or traceparent[35] != "-" \
            or traceparent[52] != "-":
        return False
    version = traceparent[:2]
    if version == "00" and len(traceparent) != 55:
        return False
    if version == "ff" or (len(traceparent) > 55 and traceparent[55] != "-"):
        return False
    trace_id, span_id = traceparent[3:35], traceparent[36:52]
    if not _HEX.issuperset(traceparent[:2] + trace_id + span_id + traceparent[53:55]):
        return False
    return trace_id != "0" * 32 and span_id != "0" * 16


def ensure(trace: Mapping[str, str] | None) -> dict[str, str]:
    """``trace`` (W3C headers) with a valid ``traceparent``: the given one, or a new trace
    (``tracestate`` only travels with the traceparent it belongs to)."""
    parent = trace.get(TRACEPARENT) if trace else None
    if parent and is_valid(parent):
        assert trace is not None
        return {h: trace[h] for h in TRACE_HEADERS if trace.get(h)}
    return {TRACEPARENT: new_traceparent()}


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a traceparent (None for none)."""
    return traceparent[3:35] if traceparent and len(traceparent) >= 55 else None


def outgoing() -> Mapping[str, str] | None:
    """The trace context to send to the app for the current task's work, if a span set
    one (None: send the event's own)."""
    return _OUTGOING.get()


@contextmanager
def sending(trace: Mapping[str, str]) -> Iterator[None]:
    """Calls to the app made inside send ``trace`` (the span of the work they are for)."""
    token = _OUTGOING.set(trace)
    try:
        yield
    finally:
        _OUTGOING.reset(token)
