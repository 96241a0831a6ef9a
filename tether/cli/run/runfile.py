"""Dapr's multi-app run file (``dapr run -f``), version 1, read into :class:`AppSpec` s.

The fields Tether uses: ``common.resourcesPath(s)``, ``common.configFilePath``,
``common.apiListenAddresses`` and ``common.env``; per app ``appID``, ``appDirPath``
(required; relative to the file), ``appPort``, ``daprHTTPPort``, ``daprGRPCPort``,
``command``, ``env``, ``resourcesPath(s)``, ``apiListenAddresses`` and ``configFilePath``
(relative to the app's folder; default ``.dapr/config.yaml`` there when it exists, as
Dapr). Other fields (appProtocol, log destinations, ...) are accepted and ignored.

One key is Tether's own, in ``common`` or per app: ``apiProcesses``, ``tether run
--api-processes`` (Dapr's run file has no such key, and ``dapr run -f`` ignores it).

Metrics, per app: ``metricsPort`` (default: a free port, as the other ports: apps of one
file cannot all have 9090) and ``enableMetrics`` (default true; in ``common`` too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tether.cli.run.process import AppSpec, check_api_processes, free_port, listen_addresses
from tether.platform.errors import ConfigError
from tether.sidecar.server import DEFAULT_HOST

DEFAULT_NAME = "dapr.yaml"


class RunFileError(ConfigError):
    """A run file Tether cannot use; the message names the file and the field."""


def find_run_file(path: str | Path) -> Path:
    """The file itself, or ``dapr.yaml`` in a folder (as ``dapr run -f DIR`` does)."""
    path = Path(path)
    if path.is_dir():
        path = path / DEFAULT_NAME
    if not path.is_file():
        raise RunFileError(f"{path}: run file not found")
    return path


def load_run_file(path: str | Path) -> list[AppSpec]:
    file = find_run_file(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RunFileError(f"{file}: cannot be read: {exc}") from exc
    return parse_run_file(data, file)


def parse_run_file(data: Any, file: Path) -> list[AppSpec]:
    def fail(where: str, problem: str) -> RunFileError:
        return RunFileError(f"{file}: {where} {problem}")

    if not isinstance(data, dict):
        raise fail("the file", "is not a mapping with version and apps")
    if str(data.get("version")) != "1":
        raise fail("version", f"must be 1, not {data.get('version')!r}")
    base = file.parent
    common = _mapping(data.get("common"), "common", fail)
    shared = _Shared(
        env=_env(common.get("env"), "common.env", fail),
        resources=_resources(common, "common", base, fail),
        config=_config(common, "common", base, fail),
        addresses=_addresses(common, "common", fail) or (DEFAULT_HOST,),
        api_processes=_api_processes(common, "common", fail),
        metrics=_enabled(common, "common", fail),
    )
    apps = data.get("apps")
    if not isinstance(apps, list) or not apps:
        raise fail("apps", "must be a non-empty list")
    specs = [
        _app(_mapping(item, f"apps[{i}]", fail), f"apps[{i}]", base, shared, fail)
        for i, item in enumerate(apps)
    ]
    _check_distinct(specs, fail)
    return specs


Fail = Callable[[str, str], RunFileError]


@dataclass(frozen=True, slots=True)
class _Shared:
    """What ``common`` gives every app that does not set it itself."""

    env: dict[str, str]
    resources: tuple[Path, ...]
    config: Path | None
    addresses: tuple[str, ...]
    api_processes: int | None
    metrics: bool | None


def _app(
    item: Mapping[str, Any], where: str, base: Path, shared: _Shared, fail: Fail
) -> AppSpec:
    dir_text = item.get("appDirPath")
    if not isinstance(dir_text, str) or not dir_text:
        raise fail(f"{where}.appDirPath", "is required")
    app_dir = (base / dir_text).resolve()
    if not app_dir.is_dir():
        raise fail(f"{where}.appDirPath", f"{app_dir} is not a folder")
    app_id = item.get("appID") or app_dir.name  # Dapr defaults the id to the folder's name
    if not isinstance(app_id, str) or "." in app_id:
        raise fail(f"{where}.appID", "must be a string without dots")
    command = item.get("command") or []
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise fail(f"{where}.command", "must be a list of strings")
    resources = _resources(item, where, app_dir, fail) or shared.resources
    if not resources and (app_dir / ".dapr" / "resources").is_dir():
        resources = ((app_dir / ".dapr" / "resources"),)
    config = _config(item, where, app_dir, fail) or shared.config
    if config is None and (app_dir / ".dapr" / "config.yaml").is_file():
        config = app_dir / ".dapr" / "config.yaml"
    addresses = _addresses(item, where, fail) or shared.addresses
    metrics = _enabled(item, where, fail)
    metrics_on = metrics if metrics is not None else shared.metrics is not False
    return AppSpec(
        app_id=app_id,
        command=tuple(command),
        app_port=_port(item, "appPort", where, fail),
        http_port=_port(item, "daprHTTPPort", where, fail) or free_port(),
        grpc_port=_port(item, "daprGRPCPort", where, fail) or free_port(),
        cwd=app_dir,
        env={**shared.env, **_env(item.get("env"), f"{where}.env", fail)},
        resources_paths=resources,
        config_file=config,
        listen_addresses=addresses,
        api_processes=_api_processes(item, where, fail) or shared.api_processes or 1,
        metrics_port=(_port(item, "metricsPort", where, fail) or free_port()) if metrics_on
        else None,
    )


def _mapping(value: Any, where: str, fail: Fail) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise fail(where, "must be a mapping")
    return value


def _env(value: Any, where: str, fail: Fail) -> dict[str, str]:
    env = _mapping(value, where, fail)
    out: dict[str, str] = {}
    for key, item in env.items():
        if isinstance(item, dict | list):
            raise fail(f"{where}.{key}", "must be a plain value")
        # YAML reads DEBUG: true as a bool; the environment wants the text Dapr passes
        out[str(key)] = str(item).lower() if isinstance(item, bool) else str(item)
    return out


def _resources(item: Mapping[str, Any], where: str, base: Path, fail: Fail) -> tuple[Path, ...]:
    """``resourcesPaths`` (a list or comma-separated) or the older ``resourcesPath``."""
    value = item.get("resourcesPaths", item.get("resourcesPath"))
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
        raise fail(f"{where}.resourcesPaths", "must be a path, comma-separated paths or a list")
    return tuple((base / p.strip()).resolve() for p in parts if p.strip())


def _config(item: Mapping[str, Any], where: str, base: Path, fail: Fail) -> Path | None:
    value = item.get("configFilePath")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise fail(f"{where}.configFilePath", "must be a path")
    return (base / value).resolve()


def _addresses(item: Mapping[str, Any], where: str, fail: Fail) -> tuple[str, ...] | None:
    """``apiListenAddresses``: Dapr's ``--dapr-listen-addresses``, comma-separated."""
    value = item.get("apiListenAddresses")
    if value is None:
        return None
    if not isinstance(value, str):
        raise fail(f"{where}.apiListenAddresses", "must be comma-separated addresses")
    try:
        return listen_addresses(value)
    except ConfigError as exc:
        raise fail(f"{where}.apiListenAddresses", str(exc)) from None


def _api_processes(item: Mapping[str, Any], where: str, fail: Fail) -> int | None:
    """``apiProcesses``: Tether's key for ``--api-processes``."""
    value = item.get("apiProcesses")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"{where}.apiProcesses", f"must be a whole number, not {value!r}")
    try:
        return check_api_processes(value)
    except ConfigError as exc:
        raise fail(f"{where}.apiProcesses", str(exc)) from None


def _enabled(item: Mapping[str, Any], where: str, fail: Fail) -> bool | None:
    """``enableMetrics``: true or false."""
    value = item.get("enableMetrics")
    if value is None or isinstance(value, bool):
        return value
    raise fail(f"{where}.enableMetrics", f"must be true or false, not {value!r}")


def _port(item: Mapping[str, Any], key: str, where: str, fail: Fail) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise fail(f"{where}.{key}", f"must be a port number, not {value!r}")
    return value


def _check_distinct(specs: list[AppSpec], fail: Fail) -> None:
    ids = [s.app_id for s in specs]
    for app_id in ids:
        if ids.count(app_id) > 1:
            raise fail("apps", f"name app id {app_id!r} twice")
    ports = [s.http_port for s in specs] + [s.grpc_port for s in specs]
    ports += [s.app_port for s in specs if s.app_port is not None]
    ports += [s.metrics_port for s in specs if s.metrics_port is not None]
    for port in ports:
        if ports.count(port) > 1:
            raise fail("apps", f"use port {port} twice (app, HTTP and gRPC ports must differ)")
