"""The watchdog that stops an app whose ``tether run`` died, where there is no parent-death
signal (tether/cli/run/lifeline.py; on Linux the kernel's signal is used, and
``test_run.py::test_a_sigkilled_tether_run_takes_its_app_down`` covers it). Real
processes: a sleeping process group and the watchdog script."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.processes import alive
from tether.cli.run import watchdog
from tether.cli.run.lifeline import Watchdog

WAIT = 30.0  # a ceiling for things that should happen, never an assertion about speed

# ignores SIGTERM: only the watchdog's SIGKILL after the grace period ends it
STUBBORN = ("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(300)")


@pytest.fixture
def app() -> Iterator[subprocess.Popen[bytes]]:
    """An app in a process group of its own, as ``tether run`` starts it."""
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True,
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    yield proc
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def test_a_closed_pipe_means_tether_run_died_and_the_app_group_is_stopped(
    app: subprocess.Popen[bytes],
) -> None:
    dog = subprocess.Popen(
        [sys.executable, watchdog.__file__, str(app.pid), "0.5"], stdin=subprocess.PIPE)
    assert dog.stdin is not None
    dog.stdin.close()  # what the death of tether run does to its end of the pipe
    assert dog.wait(WAIT) == 0
    deadline = time.monotonic() + WAIT
    while app.poll() is None:
        assert time.monotonic() < deadline, "the app outlived its tether run"
        time.sleep(0.05)
    assert app.returncode == -signal.SIGKILL  # SIGTERM ignored, SIGKILL after the grace


async def test_a_released_watchdog_leaves_the_app_alone(app: subprocess.Popen[bytes]) -> None:
    dog = await Watchdog.start(app.pid, grace=0.5)
    await dog.release()  # tether run stopped the app itself (here: it did not)
    # the watchdog has exited (release waits for it): had it stopped the app, the app would
    # be gone by now, SIGKILLed before the watchdog's exit
    assert alive(app.pid)
