"""One API process of a sidecar served by several (``tether run --api-processes N``).

Started by :class:`~tether.cli.run.api_processes.ApiProcesses` (:func:`main`), it reads its
settings as one JSON object on stdin (the API token stays off the command line), serves the
sidecar's HTTP API on the shared port, writes :data:`READY` on stdout once it listens and
runs until SIGTERM (sent by ``tether run``, or by the kernel when ``tether run`` dies:
lifeline.py), then drains the calls in flight.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tether.cli.run.logs import LogFormat, setup_logging
from tether.platform import aio, env
from tether.sidecar.server import Sharing, Sidecar, SidecarError

log = logging.getLogger(__name__)

READY = b"ready\n"


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """What an API process needs to serve the same API as its main process."""

    app_id: str
    http_port: int
    resources_paths: tuple[str, ...]
    listen_addresses: tuple[str, ...]
    config_file: str | None
    app_port: int | None
    api_token: str | None
    #: the main process's private socket (Sharing.socket)
    socket: str
    log_format: LogFormat
    log_level: str = "info"

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def decode(cls, data: bytes) -> ApiSettings:
        raw: dict[str, Any] = json.loads(data)
        raw["resources_paths"] = tuple(raw["resources_paths"])
        raw["listen_addresses"] = tuple(raw["listen_addresses"])
        return cls(**raw)


async def serve(settings: ApiSettings) -> int:
    """Serve until SIGTERM or SIGINT; the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sidecar = Sidecar(
        settings.app_id, settings.http_port, [Path(p) for p in settings.resources_paths],
        listen_addresses=settings.listen_addresses,
        config_file=settings.config_file, app_port=settings.app_port,
        api_token=settings.api_token, sharing=Sharing(settings.socket, main=False),
    )
    try:
        await sidecar.start()
    except SidecarError as exc:
        log.error("%s", exc)
        return 1
    try:
        gc.freeze()  # as tether run does: the startup heap stays out of full collections
        sys.stdout.buffer.write(READY)
        sys.stdout.flush()
        await stop.wait()
    finally:
        await sidecar.stop()  # the calls in flight finish
    return 0


def main() -> int:
    settings = ApiSettings.decode(sys.stdin.buffer.read())
    setup_logging(settings.log_format, level=settings.log_level, app_id=settings.app_id)
    return aio.run(serve(settings), uvloop=env.use_uvloop())
