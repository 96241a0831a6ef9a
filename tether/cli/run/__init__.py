"""``tether run``: sidecars and their apps, started and stopped together (docs/running.md).

:func:`run_apps` (supervisor.py) is the supervisor both forms share: ``tether run --app-id
... -- CMD`` runs one app, ``tether run -f FILE`` runs every app of a multi-app run file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tether.cli.run.logs import LOG_FORMATS, LogFormat, setup_logging
from tether.cli.run.process import (
    DEFAULT_GRACE,
    AppError,
    AppSpec,
    app_environment,
    check_api_processes,
    free_port,
    listen_addresses,
)
from tether.cli.run.supervisor import DEFAULT_PORT_TIMEOUT, run_apps
from tether.platform import aio, env
from tether.platform.errors import ConfigError
from tether.platform.logs import add_log_arguments
from tether.platform.metrics import DEFAULT_PORT as DEFAULT_METRICS_PORT
from tether.sidecar.server import DEFAULT_HOST, Sidecar, SidecarError

__all__ = [
    "DEFAULT_GRACE",
    "LOG_FORMATS",
    "AppError",
    "AppSpec",
    "LogFormat",
    "Sidecar",
    "SidecarError",
    "add_arguments",
    "app_environment",
    "free_port",
    "main",
    "run",
    "run_apps",
    "setup_logging",
]


def run(
    specs: list[AppSpec],
    fmt: LogFormat = "text",
    *,
    port_timeout: float = DEFAULT_PORT_TIMEOUT,
    grace: float = DEFAULT_GRACE,
    level: str = "info",
) -> int:
    """Set up logging and run :func:`run_apps` to completion; the process exit code."""
    # one app: every line names it; several: the lines that concern one name it
    setup_logging(fmt, level=level, app_id=specs[0].app_id if len(specs) == 1 else None)
    return aio.run(run_apps(specs, fmt, port_timeout=port_timeout, grace=grace, level=level),
                   uvloop=env.use_uvloop())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``tether run`` options (names as in ``dapr run``)."""
    parser.add_argument("-f", "--run-file", help="a multi-app run file, or a folder with dapr.yaml")
    parser.add_argument("-a", "--app-id", help="the app's id (required without --run-file)")
    parser.add_argument("-p", "--app-port", type=int, help="the port the app listens on")
    parser.add_argument(
        "-P", "--app-protocol", default="http", choices=["http"],
        help="how the sidecar talks to the app (only http so far)",
    )
    parser.add_argument(
        "-H", "--http-port", "--dapr-http-port", dest="http_port", type=int, default=3500,
        help="the sidecar's HTTP API port (default %(default)s)",
    )
    parser.add_argument(
        "--dapr-listen-addresses", dest="listen_addresses", type=_addresses,
        default=(DEFAULT_HOST,), metavar="ADDRESSES",
        help="comma-separated addresses the sidecar's HTTP API listens on (default "
        f"{DEFAULT_HOST}; anything else exposes it: set DAPR_API_TOKEN, docs/security.md)",
    )
    parser.add_argument(
        "-G", "--grpc-port", "--dapr-grpc-port", dest="grpc_port", type=int,
        help="the port of the sidecar's gRPC API, passed as DAPR_GRPC_PORT (default: a free "
             "port; docs/grpc.md)",
    )
    parser.add_argument(
        "-d", "--resources-path", action="append", default=[], metavar="DIR",
        help="a folder (or file) of component YAML; repeatable (default: embedded pub/sub)",
    )
    parser.add_argument(
        "-c", "--config", metavar="FILE",
        help="the app configuration, a Dapr Configuration resource (secret scopes, ...)",
    )
    parser.add_argument(
        "--api-processes", type=_api_processes, default=1, metavar="N",
        help="processes serving the sidecar's HTTP API on its port, the main one included "
        "(default %(default)s; more use more cores; no in-memory components then)",
    )
    parser.add_argument(
        "-M", "--metrics-port", type=int, default=DEFAULT_METRICS_PORT, metavar="PORT",
        help="the port of the sidecar's Prometheus GET /metrics (default %(default)s; "
        "docs/observability.md)",
    )
    parser.add_argument(
        "--enable-metrics", type=_boolean, default=True, metavar="true|false",
        help="serve GET /metrics (default true; --enable-metrics=false: nothing listens)",
    )
    add_log_arguments(parser)
    parser.add_argument(
        "--app-port-timeout", type=float, default=DEFAULT_PORT_TIMEOUT, metavar="SECONDS",
        help="how long to wait for the app to listen on --app-port (default %(default)g)",
    )
    parser.add_argument(
        "--grace-period", type=float, default=DEFAULT_GRACE, metavar="SECONDS",
        help="how long a stopping app gets before SIGKILL (default %(default)g)",
    )
    parser.add_argument(
        "app_command", nargs="*", metavar="COMMAND", help="the app's command, after --"
    )


def _api_processes(text: str) -> int:
    try:
        return check_api_processes(int(text))
    except (ValueError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "1", "yes", "on"):
        return True
    if text.lower() in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"must be true or false, not {text!r}")


def _addresses(text: str) -> tuple[str, ...]:
    try:
        return listen_addresses(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(args: argparse.Namespace) -> int:
    """``tether run`` with parsed ``args``; the exit code."""
    from tether.cli.run.runfile import RunFileError, load_run_file

    if args.run_file:
        if args.app_command or args.app_id:
            print("tether run: --run-file takes no --app-id or command", file=sys.stderr)
            return 2
        try:
            specs = load_run_file(args.run_file)
        except RunFileError as exc:
            print(f"tether run: {exc}", file=sys.stderr)
            return 1
    elif not args.app_id:
        print("tether run: --app-id is required (or use --run-file)", file=sys.stderr)
        return 2
    else:
        specs = [
            AppSpec(
                app_id=args.app_id,
                command=tuple(args.app_command),
                app_port=args.app_port,
                http_port=args.http_port,
                grpc_port=args.grpc_port or free_port(),
                resources_paths=tuple(Path(p) for p in args.resources_path),
                config_file=Path(args.config) if args.config else None,
                listen_addresses=args.listen_addresses,
                api_processes=args.api_processes,
                metrics_port=args.metrics_port if args.enable_metrics else None,
            )
        ]
    return run(specs, args.log_format, port_timeout=args.app_port_timeout, grace=args.grace_period,
               level=args.log_level)
