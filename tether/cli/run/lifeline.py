"""The app dies with its ``tether run``, even a SIGKILLed one that can tell it nothing.

On Linux the kernel sees to it: the app is started with a parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGTERM)`` between fork and exec), sent when the thread that
started it ends; ``tether run`` starts apps from its event loop, in the main thread, which
lives as long as the process. Elsewhere a :class:`Watchdog` process (watchdog.py) stops the
app's process group when its pipe from ``tether run`` closes without a word.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import signal
import sys
from collections.abc import Callable

from tether.cli.run import watchdog

PR_SET_PDEATHSIG = 1


def parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` arming SIGTERM on the parent's death; None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # tether run died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return arm


class Watchdog:
    """A process that stops the app's process group ``pgid`` if ``tether run`` dies; told
    by :meth:`release` when the app has stopped anyway."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self._proc = proc

    @classmethod
    async def start(cls, pgid: int, grace: float) -> Watchdog:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, watchdog.__file__, str(pgid), str(grace),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
            # its own session: a signal to tether run's process group does not reach it
            start_new_session=True,
        )
        return cls(proc)

    async def release(self) -> None:
        """The app has stopped: the watchdog exits without a signal."""
        stdin = self._proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write(watchdog.RELEASE)
            stdin.close()
        await self._proc.wait()
