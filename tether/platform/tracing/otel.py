"""The OpenTelemetry side of tracing: one TracerProvider per app (its ``service.name``),
sampled as the app's configuration says, exporting in the background (BatchSpanProcessor).

Imported only when an app turns tracing on (tether.platform.tracing.configure), so a
process that does not trace never loads the SDK.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span as OtelSpan
from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tether.platform.tracing.config import OtlpTarget, TracingConfig

_KINDS = {
    "server": SpanKind.SERVER, "client": SpanKind.CLIENT, "producer": SpanKind.PRODUCER,
    "consumer": SpanKind.CONSUMER, "internal": SpanKind.INTERNAL,
}
_PROPAGATOR = TraceContextTextMapPropagator()
#: the instrumentation scope of every span
SCOPE = "tether"


class Span:
    """One span of a Tether hop: its W3C headers for what goes on, attributes, failure."""

    __slots__ = ("_span",)

    def __init__(self, span: OtelSpan) -> None:
        self._span = span

    def headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) naming this span as the parent."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=set_span_in_context(self._span))
        return carrier

    @property
    def trace_id(self) -> str:
        return format(self._span.get_span_context().trace_id, "032x")

    def set(self, key: str, value: str | int | float | bool) -> None:
        self._span.set_attribute(key, value)

    def fail(self, description: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, description))


class Tracer:
    """Starts the spans of one app."""

    def __init__(
        self, app_id: str, config: TracingConfig, exporters: Sequence[SpanExporter] | None = None
    ) -> None:
        self.app_id = app_id
        self.config = config
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": app_id}),
            sampler=ParentBased(TraceIdRatioBased(config.sampling_rate)),
        )
        for exporter in exporters if exporters is not None else build_exporters(config):
            self._provider.add_span_processor(BatchSpanProcessor(exporter))
        self._tracer = self._provider.get_tracer(SCOPE)

    @contextmanager
    def span(
        self,
        name: str,
        kind: str,
        parent: Mapping[str, str] | None,
        attributes: Mapping[str, str | int | float | bool] | None = None,
    ) -> Iterator[Span]:
        """A span, child of the W3C context in ``parent`` (none or invalid: a new trace),
        ended on leaving; an exception leaving it marks it failed."""
        context = _PROPAGATOR.extract(parent) if parent else None
        span = self._tracer.start_span(name, context=context, kind=_KINDS[kind],
                                       attributes=attributes)
        try:
            yield Span(span)
        except BaseException as exc:
            if isinstance(exc, Exception):
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            span.end()

    def shutdown(self) -> None:
        """Export what is left and stop (blocks: the exporters' last calls)."""
        self._provider.shutdown()


def build_exporters(config: TracingConfig) -> list[SpanExporter]:
    exporters: list[SpanExporter] = []
    if config.otlp is not None:
        exporters.append(_otlp(config.otlp))
    if config.zipkin is not None:
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        exporters.append(ZipkinExporter(endpoint=config.zipkin))
    if config.stdout:
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        exporters.append(ConsoleSpanExporter())
    return exporters


def _otlp(target: OtlpTarget) -> SpanExporter:
    """Dapr's endpointAddress is ``host:port`` (a URL is taken as it is); over HTTP the
    spans go to its ``/v1/traces``."""
    endpoint = target.endpoint
    kwargs: dict[str, Any] = {}
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        if endpoint is not None:
            kwargs.update(endpoint=endpoint, insecure=not target.secure)
        return GrpcExporter(**kwargs)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    if endpoint is not None:
        if "://" not in endpoint:
            endpoint = f"{'https' if target.secure else 'http'}://{endpoint}"
        if endpoint.count("/") == 2:  # no path: OTLP's
            endpoint += "/v1/traces"
        kwargs["endpoint"] = endpoint
    return HttpExporter(**kwargs)
