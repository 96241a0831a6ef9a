"""SIGKILL of a ``tether run`` sidecar under a steady publish load on the embedded broker,
then a new one on the same folder (the same broker file) and ports: every publish the
first one accepted (204) is delivered, by it or by the new one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.faults.harness import Load, Sidecar, report, until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

OUTAGE = 1.0  # seconds between the kill and the restart: setup, not an assertion
AFTER = 50  # publishes accepted by the new sidecar


def test_a_sidecar_killed_under_load_loses_no_accepted_event(tmp_path: Path) -> None:
    sidecar = Sidecar(tmp_path / "run", None)  # no resources: the embedded broker
    load = Load(sidecar)
    try:
        sidecar.start()
        load.start()
        until("events delivered", lambda: len(sidecar.handled()) >= AFTER, sidecar.alive)
        sidecar.kill()
        load.phase = "outage"
        time.sleep(OUTAGE)
        sidecar.start()
        load.phase = "after"
        until("publishes accepted by the new sidecar",
              lambda: len(load.accepted("publish", "after")) >= AFTER, sidecar.alive)
        load.stop()
        accepted = load.accepted()
        until("every accepted event delivered",
              lambda: accepted <= sidecar.handled().keys(), sidecar.alive)
        counts = report("sidecar SIGKILL", load, sidecar, sidecar_starts=sidecar.starts)
    finally:
        load.stop()
        sidecar.stop()
    assert counts["lost"] == 0 and counts["unknown"] == 0
