"""Traces (docs/observability.md, "Traces"): OpenTelemetry spans for each hop of a call,
W3C trace context carried by every event.

The hot paths ask :func:`tracer` for the app's tracer; None (tracing off, the default)
means no span objects and no OpenTelemetry import: only a ``traceparent`` is made for a
call that has none (:mod:`.context`). :func:`configure` turns an app's tracing on from its
Configuration's ``spec.tracing`` or the OTEL_* variables (:mod:`.config`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from tether.platform.tracing.config import TracingConfig, TracingConfigError, from_env, from_spec
from tether.platform.tracing.context import (
    TRACE_HEADERS,
    TRACEPARENT,
    TRACESTATE,
    ensure,
    is_valid,
    new_traceparent,
    outgoing,
    sending,
    trace_id,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from tether.platform.tracing.otel import Tracer

__all__ = [
    "CLIENT",
    "CONSUMER",
    "INTERNAL",
    "PRODUCER",
    "SERVER",
    "TRACEPARENT",
    "TRACESTATE",
    "TRACE_HEADERS",
    "TracingConfig",
    "TracingConfigError",
    "configure",
    "ensure",
    "from_env",
    "from_spec",
    "is_valid",
    "new_traceparent",
    "outgoing",
    "sending",
    "shutdown",
    "trace_id",
    "tracer",
]

log = logging.getLogger(__name__)

#: span kinds (OpenTelemetry's, by name, so callers need not import it)
SERVER = "server"
CLIENT = "client"
PRODUCER = "producer"
CONSUMER = "consumer"
INTERNAL = "internal"

#: the tracer of each app of this process that traces (tether run -f runs several)
_TRACERS: dict[str, Tracer] = {}


def tracer(app_id: str) -> Tracer | None:
    """The app's tracer; None when it does not trace (nothing to record: skip the span)."""
    return _TRACERS.get(app_id)


def configure(
    app_id: str, config: TracingConfig | None, exporters: list[SpanExporter] | None = None
) -> Tracer | None:
    """Trace ``app_id``'s calls as ``config`` says (None: not at all); ``exporters``
    replaces the configured ones (tests)."""
    old = _TRACERS.pop(app_id, None)
    if old is not None:
        old.shutdown()
    if config is None:
        return None
    from tether.platform.tracing.otel import Tracer

    made = Tracer(app_id, config, exporters)
    _TRACERS[app_id] = made
    where = [w for w in (
        config.otlp and f"OTLP/{config.otlp.protocol} {config.otlp.endpoint or '(OTEL_*)'}",
        config.zipkin and f"Zipkin {config.zipkin}", config.stdout and "stdout") if w]
    log.info("tracing app %r: sampling rate %g, to %s", app_id, config.sampling_rate,
             ", ".join(where) or "no exporter")
    return made


async def shutdown(app_id: str) -> None:
    """Stop tracing ``app_id``, exporting the spans not sent yet (in a thread: the
    exporters block)."""
    old = _TRACERS.pop(app_id, None)
    if old is not None:
        await asyncio.to_thread(old.shutdown)
