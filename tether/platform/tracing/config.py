"""Where traces go and how many: Dapr's Configuration ``spec.tracing``, or the standard
``OTEL_*`` environment variables (``tether worker``, ``tether.App``, and a sidecar whose
Configuration has no exporter, as daprd reads ``OTEL_EXPORTER_OTLP_ENDPOINT``).

::

    spec:
      tracing:
        samplingRate: "1"          # "0".."1"; Dapr's default 0.0001; "0" turns tracing off
        stdout: true               # spans printed on stdout
        otel: {endpointAddress: "localhost:4318", protocol: http, isSecure: false}
        zipkin: {endpointAddress: "http://localhost:9411/api/v2/spans"}
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tether.platform.errors import ConfigError

#: Dapr's samplingRate when the Configuration does not set one
DEFAULT_SAMPLING_RATE = 0.0001
PROTOCOLS = ("http", "grpc")


class TracingConfigError(ConfigError):
    """A ``spec.tracing`` (or OTEL_* variable) that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class OtlpTarget:
    #: Dapr's endpointAddress (``host:port``, or a URL); None: the exporter reads OTEL_*
    endpoint: str | None
    protocol: str = "http"
    secure: bool = False


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """A tracing set-up that records something (at least one exporter, a rate above 0)."""

    sampling_rate: float
    otlp: OtlpTarget | None = None
    zipkin: str | None = None
    stdout: bool = False


def from_spec(tracing: Any, env: Mapping[str, str] | None = None) -> TracingConfig | None:
    """The set-up a Configuration's ``spec.tracing`` asks for (None: tracing off). Without
    an exporter there, the OTEL_* variables of ``env`` may give one (:func:`from_env`)."""
    if tracing is None:
        return from_env(env)
    if not isinstance(tracing, Mapping):
        raise TracingConfigError("spec.tracing must be a mapping")
    rate = _rate(tracing.get("samplingRate"), "spec.tracing.samplingRate")
    otel = _section(tracing, "otel")
    zipkin = _section(tracing, "zipkin")
    otlp = None
    if otel.get("endpointAddress"):
        protocol = str(otel.get("protocol") or "grpc").lower()  # Dapr's default
        if protocol not in PROTOCOLS:
            raise TracingConfigError(
                f"spec.tracing.otel.protocol must be http or grpc, not {protocol!r}")
        otlp = OtlpTarget(str(otel["endpointAddress"]), protocol,
                          _bool(otel.get("isSecure"), "spec.tracing.otel.isSecure"))
    zipkin_address = str(zipkin["endpointAddress"]) if zipkin.get("endpointAddress") else None
    stdout = _bool(tracing.get("stdout"), "spec.tracing.stdout")
    if otlp is None and zipkin_address is None and not stdout:
        environment = from_env(env)
        if environment is None:
            return None
        otlp = environment.otlp
    if rate == 0:
        return None
    return TracingConfig(rate, otlp, zipkin_address, stdout)


def from_env(env: Mapping[str, str] | None = None) -> TracingConfig | None:
    """OTLP to ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`` (protocol from
    ``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL``: ``http/protobuf``, the default, or ``grpc``),
    sampled by ``OTEL_TRACES_SAMPLER_ARG`` under a ratio sampler (else every trace);
    ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn it off."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true" \
            or env.get("OTEL_TRACES_EXPORTER", "").lower() == "none":
        return None
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT")
    if not endpoint:
        return None
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
                or env.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").lower()
    if protocol not in ("http/protobuf", "grpc"):
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL must be http/protobuf or grpc, not {protocol!r}")
    rate = 1.0
    if "ratio" in env.get("OTEL_TRACES_SAMPLER", "") and env.get("OTEL_TRACES_SAMPLER_ARG"):
        rate = _rate(env["OTEL_TRACES_SAMPLER_ARG"], "OTEL_TRACES_SAMPLER_ARG")
    if rate == 0:
        return None
    # the exporter reads the endpoint (and headers, certificates...) itself
    return TracingConfig(rate, OtlpTarget(None, "grpc" if protocol == "grpc" else "http"))


def _section(tracing: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    section = tracing.get(name) or {}
    if not isinstance(section, Mapping):
        raise TracingConfigError(f"spec.tracing.{name} must be a mapping")
    return section


def _rate(value: Any, what: str) -> float:
    if value is None or value == "":
        return DEFAULT_SAMPLING_RATE
    try:
        rate = float(value)
    except (TypeError, ValueError):
        rate = -1.0
    if not 0 <= rate <= 1:
        raise TracingConfigError(f"{what} must be a number from 0 to 1, not {value!r}")
    return rate


def _bool(value: Any, what: str) -> bool:
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", ""):
        return False
    raise TracingConfigError(f"{what} must be true or false, not {value!r}")
