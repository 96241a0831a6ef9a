"""The app process: started with Dapr's environment, its output relayed, stopped on request."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tether.cli.run.lifeline import Watchdog, parent_death_signal
from tether.cli.run.logs import AppOutput
from tether.platform import env as variables
from tether.platform.errors import ConfigError, TetherError
from tether.platform.metrics import DEFAULT_PORT as DEFAULT_METRICS_PORT
from tether.sidecar.server import DEFAULT_HOST

log = logging.getLogger(__name__)

DEFAULT_GRACE = 5.0  # Dapr's --dapr-graceful-shutdown-seconds default
PORT_POLL = 0.05


class AppError(TetherError):
    """The app could not be started or did not come up; the message says why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class AppSpec:
    """One app as ``tether run`` starts it, next to its sidecar."""

    app_id: str
    command: tuple[str, ...] = ()
    app_port: int | None = None
    http_port: int = 3500
    grpc_port: int = 50001
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    resources_paths: tuple[Path, ...] = ()
    #: the app configuration (a Dapr Configuration resource), or None
    config_file: Path | None = None
    #: where the sidecar's HTTP API listens (Dapr's --dapr-listen-addresses)
    listen_addresses: tuple[str, ...] = (DEFAULT_HOST,)
    #: how many processes serve the sidecar's HTTP API (tether run --api-processes)
    api_processes: int = 1
    #: where the sidecar serves GET /metrics (Dapr's --metrics-port); None: metrics off
    metrics_port: int | None = DEFAULT_METRICS_PORT


def listen_addresses(text: str) -> tuple[str, ...]:
    """Dapr's ``--dapr-listen-addresses``: comma-separated, an IPv6 one with or without
    brackets (``[::1]``). ConfigError if none is given."""
    addresses = tuple(a.strip().removeprefix("[").removesuffix("]") for a in text.split(","))
    if not all(addresses):
        raise ConfigError(f"listen addresses must be comma-separated addresses, not {text!r}")
    return addresses


MAX_API_PROCESSES = 64


def check_api_processes(count: int) -> int:
    """``--api-processes``: 1 to :data:`MAX_API_PROCESSES`; ConfigError otherwise."""
    if not 1 <= count <= MAX_API_PROCESSES:
        raise ConfigError(f"API processes must be 1 to {MAX_API_PROCESSES}, not {count}")
    return count


def app_environment(spec: AppSpec, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables the app gets: Dapr's (so the Dapr SDKs find the sidecar) and Tether's."""
    env = dict(os.environ if base is None else base)
    # the app's stdout is a pipe: unbuffered, a Python app's lines show up as they are printed
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(spec.env)
    env.update(
        APP_ID=spec.app_id,
        DAPR_HTTP_PORT=str(spec.http_port),
        DAPR_GRPC_PORT=str(spec.grpc_port),
        TETHER_APP_ID=spec.app_id,
        TETHER_HTTP_PORT=str(spec.http_port),
    )
    if spec.app_port is not None:
        env.update(APP_PORT=str(spec.app_port), TETHER_APP_PORT=str(spec.app_port))
    if spec.resources_paths:  # an in-app WorkflowRuntime finds the sidecar's components
        env["TETHER_RESOURCES_PATH"] = os.pathsep.join(
            str(p.resolve()) for p in spec.resources_paths)
    # the sidecars' embedded defaults, wherever the app runs: one location per run (an
    # in-app WorkflowRuntime or tether.App meets its sidecar on the same files)
    env[variables.TETHER_DATA_DIR] = str(variables.data_dir().absolute())
    return env


async def wait_until_listening(
    app_id: str,
    port: int,
    timeout: float | None,
    running: Callable[[], bool] = lambda: True,
    host: str = "127.0.0.1",
) -> bool:
    """Return True once something accepts connections on ``port``, False if ``running()``
    turns false first; AppError after ``timeout`` seconds (None: as long as it takes)."""
    log.info("waiting for app %r to listen on port %d", app_id, port)
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while running():
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            if deadline is not None and loop.time() >= deadline:
                raise AppError(
                    f"app {app_id!r} did not listen on port {port} within "
                    f"{timeout:g}s (is --app-port right?)"
                ) from None
            await asyncio.sleep(PORT_POLL)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        log.info("app %r is listening on port %d", app_id, port)
        return True
    return False


class AppProcess:
    """A running app. Its output lines go to ``output``; :meth:`stop` ends it."""

    def __init__(self, spec: AppSpec, output: AppOutput) -> None:
        self.spec = spec
        self.output = output
        self._proc: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Task[None] | None = None
        self._watchdog: Watchdog | None = None

    async def start(self, grace: float = DEFAULT_GRACE) -> None:
        """Start the command; it dies with this process (lifeline.py), after ``grace``
        seconds at most where a watchdog has to stop it."""
        arm = parent_death_signal()
        try:
            # a session of its own: a terminal's Ctrl+C reaches tether only, which forwards it
            self._proc = await asyncio.create_subprocess_exec(
                *self.spec.command,
                cwd=self.spec.cwd,
                env=app_environment(self.spec),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=arm,
            )
        except OSError as exc:
            # uvloop's error names no file, so say which command it was
            program = self.spec.command[0] if self.spec.command else ""
            raise AppError(
                f"cannot start app {self.spec.app_id!r}: {program!r}: {exc.strerror or exc}"
            ) from exc
        if arm is None:
            self._watchdog = await Watchdog.start(self._proc.pid, grace)
        self._relay = asyncio.create_task(self._relay_output())
        log.info("app %r started (pid %d)", self.spec.app_id, self._proc.pid)

    async def _relay_output(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while line := await self._proc.stdout.readline():
            self.output.line(line.decode(errors="replace").rstrip("\r\n"))

    async def wait(self) -> int:
        """The app's exit code once it has exited and its output is relayed."""
        assert self._proc is not None
        code = await self._proc.wait()
        if self._relay is not None:
            await self._relay
        if self._watchdog is not None:
            await self._watchdog.release()
        return code

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def wait_for_port(self, timeout: float) -> bool:
        """True once the app accepts connections on its port, False if it exits first;
        AppError after ``timeout`` seconds."""
        assert self.spec.app_port is not None
        return await wait_until_listening(
            self.spec.app_id, self.spec.app_port, timeout, lambda: self.running)

    async def stop(self, sig: int = signal.SIGTERM, grace: float = DEFAULT_GRACE) -> int:
        """Send ``sig``; SIGKILL if the app is still running after ``grace`` seconds."""
        assert self._proc is not None
        if self.running:
            self._signal(sig)
            try:
                return await asyncio.wait_for(self.wait(), grace)
            except TimeoutError:
                log.warning(
                    "app %r still running %gs after %s: killing it",
                    self.spec.app_id, grace, signal.Signals(sig).name,
                )
                self._signal(signal.SIGKILL)
        return await self.wait()

    def _signal(self, sig: int) -> None:
        # the whole process group: a shell wrapper's children stop too
        assert self._proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)
