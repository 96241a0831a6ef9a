"""The extra API processes of a sidecar (``tether run --api-processes N``, docs/running.md).

The sidecar's main process (the one ``tether run`` runs, with the subscriptions, the
schedulers and the app channel) serves the HTTP API like any sidecar, but on a shared port
(SO_REUSEPORT); :class:`ApiProcesses` starts N-1 more processes serving the same API on the
same port (api_process.py), so the kernel spreads the connections over N processes and the
API uses N cores. What only the main process can answer they forward to it over a private
Unix socket in a folder of its own (tether/sidecar/forward.py).

The API processes die with ``tether run`` (the lifeline of the apps, lifeline.py); one that
dies on its own is restarted, after a pause that doubles while restarts keep failing (the
main process and the other API processes serve meanwhile); a stop sends each SIGTERM, which
drains its calls in flight, and SIGKILL after the grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import shutil
import signal
import sys
import tempfile

from tether.cli.run.api_process import READY, ApiSettings
from tether.cli.run.lifeline import Watchdog, parent_death_signal
from tether.cli.run.logs import LogFormat
from tether.cli.run.process import AppSpec
from tether.platform.aio import cancel_task
from tether.sidecar.server import Sharing, SidecarError

log = logging.getLogger(__name__)

ENTRY = "import sys; from tether.cli.run.api_process import main; sys.exit(main())"
READY_TIMEOUT = 60.0
FIRST_DELAY = 0.5
MAX_DELAY = 10.0
#: an API process that served this long before dying is restarted without a pause
STEADY = 30.0


class ApiProcess:
    """One API process: started, waited for until it listens, stopped."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self._proc: asyncio.subprocess.Process | None = None
        self._watchdog: Watchdog | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    async def start(self, grace: float) -> None:
        """Start it and wait until it serves; SidecarError if it does not."""
        arm = parent_death_signal()
        self._proc = await asyncio.create_subprocess_exec(
            # not -m: the module is imported with its package already (runpy warns then)
            sys.executable, "-c", ENTRY,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            # its log lines go where tether run's go; a session of its own, so a terminal's
            # Ctrl+C reaches tether run only, which stops the API processes in order
            start_new_session=True, preexec_fn=arm,
        )
        if arm is None:
            self._watchdog = await Watchdog.start(self._proc.pid, grace)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._proc.stdin.write(self.settings.encode())
        self._proc.stdin.close()
        try:
            line = await asyncio.wait_for(self._proc.stdout.readline(), READY_TIMEOUT)
        except TimeoutError:
            line = b""
        if line != READY:
            code = await self.stop(grace)
            raise SidecarError(
                f"an API process of app {self.settings.app_id!r} did not start "
                f"({_ending(code)}; its log lines above say why)"
            )

    async def wait(self) -> int:
        assert self._proc is not None
        code = await self._proc.wait()
        if self._watchdog is not None:
            await self._watchdog.release()
            self._watchdog = None
        return code

    async def stop(self, grace: float) -> int:
        """SIGTERM (it drains its calls in flight); SIGKILL after ``grace`` seconds."""
        assert self._proc is not None
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            try:
                return await asyncio.wait_for(self.wait(), grace)
            except TimeoutError:
                log.warning("API process %d of app %r still running %gs after SIGTERM: "
                            "killing it", self._proc.pid, self.settings.app_id, grace)
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
        return await self.wait()


class ApiProcesses:
    """The ``count`` extra API processes of the sidecar of ``spec``."""

    def __init__(self, spec: AppSpec, count: int, fmt: LogFormat, grace: float,
                 api_token: str | None, level: str = "info") -> None:
        self.count = count
        self.grace = grace
        # a folder only this user can enter: the main process's private socket goes there
        self._folder = tempfile.mkdtemp(prefix="tether-")
        socket_path = os.path.join(self._folder, "main.sock")
        #: what the main process's Sidecar is given
        self.sharing = Sharing(socket_path, main=True)
        self.settings = ApiSettings(
            app_id=spec.app_id, http_port=spec.http_port,
            resources_paths=tuple(str(p.resolve()) for p in spec.resources_paths),
            listen_addresses=spec.listen_addresses,
            config_file=None if spec.config_file is None else str(spec.config_file.resolve()),
            app_port=spec.app_port, api_token=api_token, socket=socket_path, log_format=fmt,
            log_level=level,
        )
        self.processes: list[ApiProcess] = []
        self._watchers: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.pid is not None]

    async def start(self, addresses: tuple[str, ...]) -> None:
        """Start every API process on ``addresses`` (those the main process serves on) and
        wait until each serves; SidecarError if one does not (the others are stopped)."""
        self.settings = dataclasses.replace(self.settings, listen_addresses=addresses)
        started = [ApiProcess(self.settings) for _ in range(self.count)]
        outcomes = await asyncio.gather(*(p.start(self.grace) for p in started),
                                        return_exceptions=True)
        self.processes = [p for p, o in zip(started, outcomes, strict=True) if o is None]
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                await self.stop()
                raise outcome
        log.info("app %r: %d API processes besides the main one (pids %s)",
                 self.settings.app_id, self.count, ", ".join(map(str, self.pids)))
        self._watchers = [asyncio.create_task(self._watch(i)) for i in range(self.count)]

    async def _watch(self, slot: int) -> None:
        """Restart the API process of ``slot`` whenever it dies, until the stop."""
        loop = asyncio.get_running_loop()
        delay = FIRST_DELAY
        while True:
            process = self.processes[slot]
            began = loop.time()
            code = await process.wait()
            if self._stopping:
                return
            if loop.time() - began >= STEADY:
                delay = FIRST_DELAY
            log.error("API process %s of app %r ended (%s): restarting it in %gs",
                      process.pid, self.settings.app_id, _ending(code), delay)
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_DELAY)
                if self._stopping:
                    return
                replacement = ApiProcess(self.settings)
                self.processes[slot] = replacement  # a stop meanwhile stops it too
                try:
                    await replacement.start(self.grace)
                except SidecarError as exc:
                    log.error("%s: retrying in %gs", exc, delay)
                    continue
                log.info("API process %s of app %r started in place of %s",
                         replacement.pid, self.settings.app_id, process.pid)
                break

    async def stop(self) -> None:
        """Stop every API process (each drains its calls in flight) and remove the socket's
        folder. Safe to call twice."""
        self._stopping = True
        for watcher in self._watchers:
            await cancel_task(watcher)
        self._watchers = []
        running = [p for p in self.processes if p.pid is not None]
        await asyncio.gather(*(p.stop(self.grace) for p in running))
        self.processes = []
        shutil.rmtree(self._folder, ignore_errors=True)


def _ending(code: int) -> str:
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
