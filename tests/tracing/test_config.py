"""spec.tracing and OTEL_* read into a tracing set-up; W3C traceparent checks."""

from __future__ import annotations

import pytest

from tether.platform import tracing
from tether.platform.errors import ConfigError
from tether.platform.tracing.config import OtlpTarget, TracingConfig
from tether.platform.tracing.otel import build_exporters


def test_dapr_spec_with_every_exporter() -> None:
    config = tracing.from_spec({
        "samplingRate": "0.5", "stdout": True,
        "otel": {"endpointAddress": "collector:4317", "isSecure": "true"},
        "zipkin": {"endpointAddress": "http://zipkin:9411/api/v2/spans"},
    }, env={})
    assert config == TracingConfig(0.5, OtlpTarget("collector:4317", "grpc", True),
                                   "http://zipkin:9411/api/v2/spans", True)
    kinds = [type(e).__name__ for e in build_exporters(config)]
    assert kinds == ["OTLPSpanExporter", "ZipkinExporter", "ConsoleSpanExporter"]


def test_off_without_exporter_or_at_rate_zero_and_the_default_rate() -> None:
    assert tracing.from_spec(None, env={}) is None
    assert tracing.from_spec({"samplingRate": "1"}, env={}) is None
    assert tracing.from_spec({"samplingRate": "0", "stdout": True}, env={}) is None
    config = tracing.from_spec({"stdout": True}, env={})
    assert config is not None and config.sampling_rate == 0.0001


def test_otel_variables_configure_tracing_when_the_spec_has_no_exporter() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
           "OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    assert tracing.from_env(env) == TracingConfig(0.25, OtlpTarget(None, "http"))
    assert tracing.from_spec({"samplingRate": "1"}, env) == TracingConfig(
        1.0, OtlpTarget(None, "http"))
    assert tracing.from_env({**env, "OTEL_SDK_DISABLED": "true"}) is None


@pytest.mark.parametrize("spec", [
    {"samplingRate": "2", "stdout": True}, {"samplingRate": "x"},
    {"otel": {"endpointAddress": "c:1", "protocol": "udp"}}, {"stdout": "maybe"}, ["x"],
])
def test_a_bad_spec_is_a_config_error_naming_the_field(spec: object) -> None:
    with pytest.raises(ConfigError, match=r"spec\.tracing"):
        tracing.from_spec(spec, env={})


def test_traceparent_checks_and_new_traces() -> None:
    good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert tracing.is_valid(good)
    for bad in ("", "broken", good.upper(), "ff" + good[2:], good[:3] + "0" * 32 + good[35:],
                good + "-x"):
        assert not tracing.is_valid(bad), bad
    assert tracing.ensure({"traceparent": good, "tracestate": "a=1"}) == {
        "traceparent": good, "tracestate": "a=1"}
    fresh = tracing.ensure({"traceparent": "broken", "tracestate": "a=1"})
    assert list(fresh) == ["traceparent"] and tracing.is_valid(fresh["traceparent"])
    assert tracing.trace_id(fresh["traceparent"]) != tracing.trace_id(tracing.new_traceparent())
