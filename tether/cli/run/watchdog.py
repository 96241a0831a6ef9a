"""Stops an app whose ``tether run`` died, where the system has no parent-death signal
(lifeline.py): ``python watchdog.py PGID GRACE`` with a pipe from ``tether run`` on stdin.

End of file after :data:`RELEASE` means ``tether run`` stopped the app itself; end of file
alone means it is gone (even SIGKILL closes its end of the pipe), so the app's process
group gets SIGTERM, and SIGKILL after ``GRACE`` seconds. Run as a plain script, importing
nothing of Tether, so it starts fast and outlives the package's state.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

RELEASE = b"stopped"
POLL = 0.1


def stop_group(pgid: int, grace: float) -> None:
    """SIGTERM to the process group, SIGKILL to what is left of it after ``grace`` s."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        time.sleep(POLL)
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def main(argv: list[str]) -> None:
    pgid, grace = int(argv[1]), float(argv[2])
    if sys.stdin.buffer.read() != RELEASE:  # blocks while tether run lives
        stop_group(pgid, grace)


if __name__ == "__main__":
    main(sys.argv)
