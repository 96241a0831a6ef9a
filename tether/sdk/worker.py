"""``tether worker module:app``: run an :class:`~tether.sdk.App` in N processes.

The parent starts ``--replicas`` children, each re-running this command with an internal
``--child`` flag; a child imports the app and runs its subscriptions (one consumer group,
the app id, so the children split the partitions) until SIGTERM or SIGINT, then drains.
The parent restarts a child that exits while it is not stopping (a crash, a SIGKILL), with
a growing pause for one that keeps dying at once, and on SIGTERM/SIGINT forwards SIGTERM to
every child, waits for them to drain (``--grace`` seconds, then SIGKILL) and exits 0.

With ``--metrics-port P`` child number i serves its Prometheus series on ``127.0.0.1:P+i``
(docs/observability.md); without it, none (9090 is the sidecars' default).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from tether.platform import aio, env
from tether.platform.logs import add_log_arguments, setup_logging
from tether.sdk.app import App
from tether.workers.workflows import WorkflowRuntime

log = logging.getLogger(__name__)

POLL_SECONDS = 0.1
#: a child that dies sooner than this after its start is restarted after a pause
QUICK_EXIT_SECONDS = 5.0
MAX_RESTART_PAUSE = 30.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="MODULE:APP",
                        help="the tether.App (or workflow WorkflowRuntime) to run")
    parser.add_argument("--replicas", type=int, default=1, help="processes (default 1)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--broker", help="broker URL for every pubsub name of the app")
    where.add_argument("--resources-path", help="folder of Dapr component files")
    parser.add_argument(
        "--grace", type=float, default=30.0,
        help="seconds children get to drain after SIGTERM before SIGKILL (default 30)",
    )
    parser.add_argument(
        "--app-id",
        help="the app id (as TETHER_APP_ID/APP_ID): a WorkflowRuntime's namespace derives from"
        " it, so workers and the app's sidecar (tether run --app-id) share workflows",
    )
    parser.add_argument(
        "--metrics-port", type=int, metavar="PORT",
        help="serve GET /metrics: child i on PORT+i (default: no metrics endpoint)",
    )
    add_log_arguments(parser)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)


def main(args: argparse.Namespace) -> int:
    setup_logging(args.log_format, level=args.log_level, app_id=args.app_id or env.app_id())
    if args.replicas < 1:
        print("tether: --replicas must be at least 1", file=sys.stderr)
        return 2
    if args.app_id:
        # before the import: a module-level WorkflowRuntime() reads it; children inherit it
        env.set_app_id(args.app_id)
    try:
        app = load_app(args.target)
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        print(f"tether: cannot load {args.target}: {exc}", file=sys.stderr)
        return 2
    app.configure(broker=args.broker, resources_path=args.resources_path)
    if args.child:
        aio.run(serve(app, args.metrics_port), uvloop=env.use_uvloop())
        return 0
    return Supervisor(child_command(args), args.replicas, args.grace, args.metrics_port).run()


def load_app(target: str) -> App | WorkflowRuntime:
    """``package.module:attribute`` (the module looked up from the current folder too)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ValueError("expected MODULE:APP, e.g. orders.service:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    found: object = importlib.import_module(module_name)
    for part in attribute.split("."):
        found = getattr(found, part)
    if not isinstance(found, App | WorkflowRuntime):
        raise TypeError(f"{target} is a {type(found).__name__}, not a tether.App"
                        " or a WorkflowRuntime")
    return found


async def serve(app: App | WorkflowRuntime, metrics_port: int | None = None) -> None:
    """Run ``app`` until SIGTERM or SIGINT, then drain it; with ``metrics_port``, serve the
    process's series there meanwhile."""
    metrics = None
    if metrics_port is not None:
        from tether.platform.metrics.exposition import MetricsServer  # aiohttp.web: lazily

        metrics = MetricsServer(metrics_port)
        await metrics.start()
    try:
        await _serve(app)
    finally:
        if metrics is not None:
            await metrics.stop()


async def _serve(app: App | WorkflowRuntime) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if isinstance(app, WorkflowRuntime):
        async with app:
            log.info("worker %d running %d workflow(s), %d activities", os.getpid(),
                     len(app.workflows), len(app.activities))
            gc.freeze()
            await stop.wait()
            log.info("worker %d draining", os.getpid())
        return
    async with app.run():
        log.info("worker %d running %d subscription(s)", os.getpid(), len(app.subscriptions))
        # the startup heap (imports, the app, components) lives as long as the process: kept
        # out of full collections, which otherwise stall deliveries for tens of ms (as in
        # tether run, bench/pubsub)
        gc.freeze()
        await stop.wait()
        log.info("worker %d draining", os.getpid())


def child_command(args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "tether.cli.main", "worker", args.target, "--child",
               "--log-format", args.log_format, "--log-level", args.log_level]
    if args.broker:
        command += ["--broker", args.broker]
    if args.resources_path:
        command += ["--resources-path", args.resources_path]
    return command


@dataclass(slots=True)
class _Slot:
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    pause: float = 0.0
    due: float = field(default=0.0)


class Supervisor:
    """Keeps ``replicas`` children of ``command`` alive until told to stop."""

    def __init__(
        self, command: list[str], replicas: int, grace: float, metrics_port: int | None = None
    ) -> None:
        self._command = command
        self._metrics_port = metrics_port
        self._slots = [_Slot() for _ in range(replicas)]
        self._grace = grace
        self._stopping = False

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            while not self._stopping:
                self._tend()
                time.sleep(POLL_SECONDS)
            self._stop_all()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 0

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process is not None]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def _tend(self) -> None:
        now = time.monotonic()
        for index, slot in enumerate(self._slots):
            if slot.process is not None:
                code = slot.process.poll()
                if code is None:
                    continue
                lived = now - slot.started
                slot.pause = (
                    min(max(slot.pause * 2, 0.5), MAX_RESTART_PAUSE)
                    if lived < QUICK_EXIT_SECONDS else 0.0
                )
                slot.due = now + slot.pause
                log.warning(
                    "worker %d (pid %d) exited with %s; restarting in %.1fs",
                    index, slot.process.pid, code, slot.pause,
                )
                slot.process = None
            if now >= slot.due:
                command = self._command
                if self._metrics_port is not None:  # one port per child, kept on a restart
                    command = [*command, "--metrics-port", str(self._metrics_port + index)]
                slot.process = subprocess.Popen(command)
                slot.started = now
                log.info("worker %d started (pid %d)", index, slot.process.pid)

    def _stop_all(self) -> None:
        running = [s.process for s in self._slots if s.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        for process in running:
            try:
                process.wait(max(deadline - time.monotonic(), 0.0))
            except subprocess.TimeoutExpired:
                log.warning("worker pid %d did not drain in time; killing it", process.pid)
                process.kill()
                process.wait()
