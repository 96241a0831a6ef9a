"""An aiohttp application served for a test: in the test's own event loop
(:func:`serving`), or as the whole of a test app's process until ``tether run`` stops it
(:func:`serve_until_sigterm`, for the app scripts the process tests start)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator

from aiohttp import web


@contextlib.asynccontextmanager
async def serving(app: web.Application, port: int, host: str = "127.0.0.1"
                  ) -> AsyncIterator[web.AppRunner]:
    """``app`` listening on ``host:port`` for the block's length."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    try:
        yield runner
    finally:
        await runner.cleanup()


def serve_until_sigterm(app: web.Application) -> None:
    """Serve ``app`` on ``$APP_PORT`` (as ``tether run`` gives it) until SIGTERM."""

    async def main() -> None:
        async with serving(app, int(os.environ["APP_PORT"])):
            stop = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
            await stop.wait()

    asyncio.run(main())
