"""Where a :class:`tether.Client` finds its sidecar: arguments first, then the environment
variables Dapr's SDKs read (``tether run`` sets them for its app)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from urllib.parse import urlsplit

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3500
DEFAULT_TIMEOUT = 60.0  # Dapr's DAPR_HTTP_TIMEOUT_SECONDS default
DEFAULT_HEALTH_TIMEOUT = 60.0  # Dapr's DAPR_HEALTH_TIMEOUT default


def _version() -> str:
    try:
        return version("tether")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0.0.0"


USER_AGENT = f"tether-sdk-python/{_version()}"
TOKEN_HEADER = "dapr-api-token"


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """The sidecar's base URL (scheme, host, port, optional path prefix) and what every
    request carries."""

    scheme: str
    host: str
    port: int
    base_path: str
    api_token: str | None
    timeout: float
    health_timeout: float
    #: where the address came from, for error messages ("given", "DAPR_HTTP_PORT", ...)
    source: str = "given"

    @property
    def origin(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin + self.base_path

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": USER_AGENT}
        if self.api_token:
            headers[TOKEN_HEADER] = self.api_token
        return headers


def resolve_settings(
    address: str | None = None,
    *,
    api_token: str | None = None,
    timeout: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> ClientSettings:
    """The settings for ``address`` (``http[s]://host[:port][/prefix]`` or ``host:port``).

    Without an address: ``DAPR_HTTP_ENDPOINT`` if set (as in Dapr's SDK), else
    ``http://{DAPR_RUNTIME_HOST or 127.0.0.1}:{port}`` with the port from
    ``TETHER_HTTP_PORT``, then ``DAPR_HTTP_PORT``, then 3500. The token defaults to
    ``DAPR_API_TOKEN``, the timeout to ``DAPR_HTTP_TIMEOUT_SECONDS`` (60 s).
    """
    env = os.environ if environ is None else environ  # DAPR_* as Dapr's SDK reads them
    source = "given"
    if address is None and env.get("DAPR_HTTP_ENDPOINT"):
        address, source = env["DAPR_HTTP_ENDPOINT"], "DAPR_HTTP_ENDPOINT"
    if address is None:
        host = env.get("DAPR_RUNTIME_HOST") or DEFAULT_HOST
        named = next((n for n in ("TETHER_HTTP_PORT", "DAPR_HTTP_PORT") if env.get(n)), None)
        port = _port(env[named] if named else DEFAULT_PORT)
        address = f"http://{host}:{port}"
        source = named or "default"
    if "://" not in address:
        address = "http://" + address
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"the sidecar address must be http:// or https://, got {address!r}")
    if not parts.hostname:
        raise ValueError(f"the sidecar address has no host: {address!r}")
    default_port = DEFAULT_PORT if parts.scheme == "http" else 443
    try:
        port = parts.port or default_port
    except ValueError:
        raise ValueError(f"the sidecar address has a bad port: {address!r}") from None
    return ClientSettings(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        base_path=parts.path.rstrip("/"),
        api_token=api_token if api_token is not None else (env.get("DAPR_API_TOKEN") or None),
        timeout=timeout if timeout is not None else _seconds(
            env.get("DAPR_HTTP_TIMEOUT_SECONDS"), DEFAULT_TIMEOUT),
        source=source,
        health_timeout=_seconds(env.get("DAPR_HEALTH_TIMEOUT"), DEFAULT_HEALTH_TIMEOUT),
    )


def _port(value: str | int) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"the sidecar port must be a number, got {value!r}") from None
    if not 0 < port < 65536:
        raise ValueError(f"the sidecar port is out of range: {port}")
    return port


def _seconds(value: str | None, default: float) -> float:
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"expected a number of seconds, got {value!r}") from None
    return seconds if seconds > 0 else default
