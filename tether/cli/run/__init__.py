"""``tether run``: sidecars and their apps, started and stopped together (docs/running.md).

:func:`run_apps` is the supervisor both forms share: ``tether run --app-id ... -- CMD`` runs
one app, ``tether run -f FILE`` runs every app of a multi-app run file.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from tether.cli.run.logs import LOG_FORMATS, AppOutput, LogFormat, setup_logging
from tether.cli.run.process import (
    DEFAULT_GRACE,
    AppError,
    AppProcess,
    AppSpec,
    app_environment,
    free_port,
    listen_addresses,
)
from tether.platform import env
from tether.platform.errors import ConfigError
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

log = logging.getLogger(__name__)

DEFAULT_PORT_TIMEOUT = 60.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Signals:
    """SIGINT/SIGTERM caught for the whole run: recorded, and ``stopped`` set."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.stopped = asyncio.Event()

    def __enter__(self) -> _Signals:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        return self

    def __exit__(self, *_: object) -> None:
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        self.received.append(sig)
        self.stopped.set()


async def run_apps(
    specs: list[AppSpec],
    fmt: LogFormat = "text",
    *,
    port_timeout: float = DEFAULT_PORT_TIMEOUT,
    grace: float = DEFAULT_GRACE,
) -> int:
    """Start a sidecar per spec, then the apps; stop all when one app exits, on SIGINT or
    SIGTERM, or on ``POST /v1.0/shutdown``. Returns the exit code for ``tether run``.
    """
    sidecars: list[Sidecar] = []
    apps: list[AppProcess] = []
    with _Signals() as signals:
        try:
            for spec in specs:
                if signals.stopped.is_set():
                    return 0
                sidecar = Sidecar(
                    spec.app_id, spec.http_port, spec.resources_paths,
                    listen_addresses=spec.listen_addresses, config_file=spec.config_file,
                    app_port=spec.app_port,
                    # the token the app's SDK sends: its environment's (a run file's env too)
                    api_token=env.dapr_api_token(app_environment(spec)),
                )
                await sidecar.start()
                sidecars.append(sidecar)
            # the startup heap (imports, components) lives as long as the process: kept out
            # of full collections, which otherwise stall requests for tens of ms (bench/pubsub)
            gc.freeze()
            return await _supervise(specs, sidecars, apps, signals, fmt, port_timeout, grace)
        except (SidecarError, AppError) as exc:
            log.error("%s", exc)
            await _stop_apps(apps, signal.SIGTERM, grace)
            return 1
        finally:
            for sidecar in sidecars:
                await sidecar.stop()


async def _supervise(
    specs: list[AppSpec],
    sidecars: list[Sidecar],
    apps: list[AppProcess],
    signals: _Signals,
    fmt: LogFormat,
    port_timeout: float,
    grace: float,
) -> int:
    stops: list[asyncio.Future[Any]] = [asyncio.create_task(signals.stopped.wait())]
    stops += [asyncio.create_task(s.shutdown_requested.wait()) for s in sidecars]
    exits: dict[asyncio.Future[Any], AppProcess] = {}
    try:
        for spec in specs:
            if spec.command and not signals.stopped.is_set():
                app = AppProcess(spec, AppOutput(spec.app_id, fmt))
                await app.start(grace)
                apps.append(app)
                exits[asyncio.create_task(app.wait())] = app
        await _wait_for_ports(apps, port_timeout, [*stops, *exits])
        if all(a.running for a in apps) and not any(t.done() for t in [*stops, *exits]):
            await _start_subscriptions(specs, sidecars, grace)
        done, _ = await asyncio.wait([*stops, *exits], return_when=asyncio.FIRST_COMPLETED)
        finished = [t for t in exits if t in done]
        if finished:
            code: int = finished[0].result()
            log.info("app %r exited with code %d", exits[finished[0]].spec.app_id, code)
            await _stop_subscriptions(sidecars)
            await _stop_apps(apps, signal.SIGTERM, grace)
            return 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell says
        received = signals.received
        forward = received[0] if received else signal.SIGTERM
        why = signal.Signals(forward).name if received else "POST /v1.0/shutdown"
        log.info("stopping (%s)", why)
        # deliveries in flight finish while the app still runs; then the app stops
        await _stop_subscriptions(sidecars)
        await _stop_apps(apps, forward, grace)
        return 0
    finally:
        for task in stops:
            task.cancel()


async def _wait_for_ports(
    apps: list[AppProcess], timeout: float, interrupts: list[asyncio.Future[Any]]
) -> None:
    """Wait until every app with a port listens, unless a stop or an app exit comes first."""
    waits = [a.wait_for_port(timeout) for a in apps if a.spec.app_port is not None]
    if not waits:
        return
    ready: asyncio.Future[list[None]] = asyncio.ensure_future(asyncio.gather(*waits))
    await asyncio.wait([ready, *interrupts], return_when=asyncio.FIRST_COMPLETED)
    if ready.done():
        ready.result()  # raises AppError on a timeout
    else:
        ready.cancel()


async def _start_subscriptions(specs: list[AppSpec], sidecars: list[Sidecar], grace: float) -> None:
    """Deliver to every app that has a port (it listens by now)."""
    for spec, sidecar in zip(specs, sidecars, strict=True):
        if spec.command and spec.app_port is not None:
            await sidecar.start_subscriptions(spec.app_port, drain_timeout=grace)


async def _stop_subscriptions(sidecars: list[Sidecar]) -> None:
    await asyncio.gather(*(s.stop_subscriptions() for s in sidecars))


async def _stop_apps(apps: list[AppProcess], sig: int, grace: float) -> None:
    running = [a for a in apps if a.running]
    codes = await asyncio.gather(*(a.stop(sig, grace) for a in running))
    for app, code in zip(running, codes, strict=True):
        log.info("app %r stopped (exit code %d)", app.spec.app_id, code)


def run(
    specs: list[AppSpec],
    fmt: LogFormat = "text",
    *,
    port_timeout: float = DEFAULT_PORT_TIMEOUT,
    grace: float = DEFAULT_GRACE,
) -> int:
    """Set up logging and run :func:`run_apps` to completion; the process exit code."""
    setup_logging(fmt)
    return asyncio.run(run_apps(specs, fmt, port_timeout=port_timeout, grace=grace))


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
        help="the port passed as DAPR_GRPC_PORT (no gRPC API yet; default: a free port)",
    )
    parser.add_argument(
        "-d", "--resources-path", action="append", default=[], metavar="DIR",
        help="a folder (or file) of component YAML; repeatable (default: embedded pub/sub)",
    )
    parser.add_argument(
        "-c", "--config", metavar="FILE",
        help="the app configuration, a Dapr Configuration resource (secret scopes, ...)",
    )
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text")
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
            )
        ]
    return run(specs, args.log_format, port_timeout=args.app_port_timeout, grace=args.grace_period)
