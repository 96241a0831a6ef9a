"""The supervisor of ``tether run``: a sidecar per app, the apps, each sidecar connected to
its app once that app listens, and everything stopped together (docs/running.md)."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from dataclasses import dataclass
from typing import Any

from tether.cli.run.api_processes import ApiProcesses
from tether.cli.run.logs import (
    EXITED_APP,
    EXITED_DAPR,
    UP,
    UP_WITH_APP,
    AppOutput,
    LogFormat,
    status,
)
from tether.cli.run.process import (
    DEFAULT_GRACE,
    AppError,
    AppProcess,
    AppSpec,
    app_environment,
    wait_until_listening,
)
from tether.platform import env
from tether.sidecar.server import Sidecar, SidecarError

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
    level: str = "info",
) -> int:
    """Start a sidecar per spec, then the apps; stop all when one app exits, on SIGINT or
    SIGTERM, or on ``POST /v1.0/shutdown``. Returns the exit code for ``tether run``.
    """
    sidecars: list[Sidecar] = []
    pools: list[ApiProcesses | None] = []
    apps: list[AppProcess] = []
    with _Signals() as signals:
        try:
            for spec in specs:
                if signals.stopped.is_set():
                    return 0
                # the token the app's SDK sends: its environment's (a run file's env too)
                token = env.dapr_api_token(app_environment(spec))
                pool = None
                if spec.api_processes > 1:
                    pool = ApiProcesses(spec, spec.api_processes - 1, fmt, grace, token, level)
                pools.append(pool)
                sidecar = Sidecar(
                    spec.app_id, spec.http_port, spec.resources_paths,
                    listen_addresses=spec.listen_addresses, config_file=spec.config_file,
                    app_port=spec.app_port, api_token=token,
                    sharing=None if pool is None else pool.sharing,
                    metrics_port=spec.metrics_port, grpc_port=spec.grpc_port,
                )
                await sidecar.start()
                sidecars.append(sidecar)
                if pool is not None:
                    await pool.start(sidecar.listening)
            # the startup heap (imports, components) lives as long as the process: kept out
            # of full collections, which otherwise stall requests for tens of ms (bench/pubsub)
            gc.freeze()
            members = [_Member(spec, sidecar, pool) for spec, sidecar, pool in zip(
                specs, sidecars, pools, strict=True)]
            return await _supervise(members, apps, signals, fmt, port_timeout, grace)
        except (SidecarError, AppError) as exc:
            log.error("%s", exc)
            await _stop_apps(apps, signal.SIGTERM, grace)
            return 1
        finally:
            # the API processes first: the calls they drain may still need the main one
            for pool in pools:
                if pool is not None:
                    await pool.stop()
            for sidecar in sidecars:
                await sidecar.stop()
                status(fmt, EXITED_DAPR, sidecar.app_id)


@dataclass
class _Member:
    """One app of the run: its spec, its sidecar, its process (None without a command)."""

    spec: AppSpec
    sidecar: Sidecar
    #: its sidecar's extra API processes (--api-processes above 1)
    pool: ApiProcesses | None = None
    process: AppProcess | None = None
    #: it did not come up (never listened, or its subscriptions cannot run): stopped alone
    failed: bool = False

    @property
    def alive(self) -> bool:
        """Still part of the run: its app running, or its sidecar serving an app that runs
        elsewhere."""
        if self.failed:
            return False
        return self.process is None or self.process.running


async def _supervise(
    members: list[_Member],
    apps: list[AppProcess],
    signals: _Signals,
    fmt: LogFormat,
    port_timeout: float,
    grace: float,
) -> int:
    """Start the apps, connect each sidecar to its app once that app listens, and run until
    an app exits or a stop comes. An app that does not come up is stopped with its sidecar
    and the others go on, as with ``dapr run -f``; the run then ends with exit code 1."""
    stops: list[asyncio.Future[Any]] = [asyncio.create_task(signals.stopped.wait())]
    stops += [asyncio.create_task(m.sidecar.shutdown_requested.wait()) for m in members]
    exits: dict[asyncio.Future[int], _Member] = {}
    connecting: dict[asyncio.Future[None], _Member] = {}
    failed = False
    try:
        for member in members:
            if member.spec.command and not signals.stopped.is_set():
                member.process = AppProcess(member.spec, AppOutput(member.spec.app_id, fmt))
                await member.process.start(grace)
                apps.append(member.process)
                exits[asyncio.create_task(member.process.wait())] = member
        for member in members:
            if member.spec.app_port is not None and (member.process or not member.spec.command):
                connecting[asyncio.create_task(_connect(member, port_timeout, grace))] = member
            else:
                _up(member, fmt)
        while True:
            done, _ = await asyncio.wait(
                [*stops, *exits, *connecting], return_when=asyncio.FIRST_COMPLETED)
            for exit_ in [t for t in exits if t in done and exits[t].failed]:
                del exits[exit_]  # a failed app, stopped by us: not the end of the run
            finished = [t for t in exits if t in done]
            if finished:
                code = finished[0].result()
                app_id = exits[finished[0]].spec.app_id
                log.info("app %r exited with code %d", app_id, code)
                if code == 0:
                    status(fmt, EXITED_APP, app_id)
                await _stop(members, connecting, apps, signal.SIGTERM, grace, fmt)
                if code < 0:  # killed by signal N: 128+N, as a shell says
                    return 128 - code
                return code or int(failed)
            if any(t in done for t in stops):
                received = signals.received
                forward = received[0] if received else signal.SIGTERM
                why = signal.Signals(forward).name if received else "POST /v1.0/shutdown"
                log.info("stopping (%s)", why)
                await _stop(members, connecting, apps, forward, grace, fmt)
                return int(failed)
            for task in [t for t in connecting if t in done]:
                member = connecting.pop(task)
                error = task.exception()
                if not isinstance(error, AppError | SidecarError):
                    task.result()  # connected, or a bug: raised
                    _up(member, fmt)
                    continue
                log.error("%s", error)
                failed = True
                await _drop(member, grace)
            if failed and not any(m.alive for m in members):
                return 1
    finally:
        for task in stops:
            task.cancel()
        await _cancel(connecting)


def _up(member: _Member, fmt: LogFormat) -> None:
    """Dapr's line once an app's sidecar serves and its app (if any) is connected."""
    status(fmt, UP_WITH_APP if member.spec.command else UP, member.spec.app_id)


async def _connect(member: _Member, timeout: float, grace: float) -> None:
    """Once the app listens, start delivering its subscriptions (the app channel). An app
    ``tether run`` did not start (one in a debugger) is waited for as long as it takes, as
    daprd does; a started one for ``timeout`` seconds, unless it exits first."""
    port = member.spec.app_port
    assert port is not None
    if member.process is None:
        await wait_until_listening(member.spec.app_id, port, None)
    elif not await member.process.wait_for_port(timeout):
        return  # it exited: the supervisor sees that
    await member.sidecar.start_subscriptions(port, drain_timeout=grace)


async def _drop(member: _Member, grace: float) -> None:
    """Stop one app that did not come up, and its sidecar."""
    member.failed = True
    if member.process is not None and member.process.running:
        code = await member.process.stop(signal.SIGTERM, grace)
        log.info("app %r stopped (exit code %d)", member.spec.app_id, code)
    if member.pool is not None:
        await member.pool.stop()
    await member.sidecar.stop()


async def _stop(
    members: list[_Member],
    connecting: dict[asyncio.Future[None], _Member],
    apps: list[AppProcess],
    sig: int,
    grace: float,
    fmt: LogFormat | None = None,
) -> None:
    await _cancel(connecting)
    # deliveries in flight finish while the apps still run; then the apps stop
    await asyncio.gather(*(m.sidecar.stop_subscriptions() for m in members))
    await _stop_apps(apps, sig, grace, fmt)


async def _cancel(tasks: dict[asyncio.Future[None], _Member]) -> None:
    """Cancel the tasks and collect their endings, so none is left unretrieved."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    tasks.clear()


async def _stop_apps(apps: list[AppProcess], sig: int, grace: float,
                     fmt: LogFormat | None = None) -> None:
    """Stop the apps still running; with ``fmt`` (a clean stop), Dapr's line for each app
    that ended within its grace period."""
    running = [a for a in apps if a.running]
    codes = await asyncio.gather(*(a.stop(sig, grace) for a in running))
    for app, code in zip(running, codes, strict=True):
        log.info("app %r stopped (exit code %d)", app.spec.app_id, code)
        if fmt is not None and code != -signal.SIGKILL:
            status(fmt, EXITED_APP, app.spec.app_id)
