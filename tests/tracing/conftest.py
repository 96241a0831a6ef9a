"""A local OTLP/HTTP receiver (an aiohttp server) the tracing tests export spans to."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.serving import serving
from tether.cli.run import free_port


@dataclass
class ReceivedSpan:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, object] = field(default_factory=dict)
    #: OTLP's status code: 0 unset, 1 ok, 2 error
    status: int = 0


@dataclass
class Receiver:
    """Spans posted to ``endpoint`` (``host:port``, Dapr's otel.endpointAddress)."""

    endpoint: str
    spans: list[ReceivedSpan] = field(default_factory=list)

    def named(self, prefix: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name.startswith(prefix)]


def _value(any_value: object) -> object:
    kind = any_value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(any_value, kind) if kind else None


@pytest.fixture
async def otlp_receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    receiver = Receiver(f"127.0.0.1:{port}")

    async def traces(request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            service = next((_value(a.value) for a in resource_spans.resource.attributes
                            if a.key == "service.name"), "")
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    receiver.spans.append(ReceivedSpan(
                        str(service), span.name, span.kind, span.trace_id.hex(),
                        span.span_id.hex(), span.parent_span_id.hex(),
                        {a.key: _value(a.value) for a in span.attributes}, span.status.code,
                    ))
        return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    async with serving(app, port):
        yield receiver
