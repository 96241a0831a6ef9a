"""kill -9 of a Redis that is both the broker and the state store, under a steady publish
and save load against a real ``tether run``, then a restart on the same port.

Redis keeps nothing on disk by default: this one runs with an append-only file fsynced on
every write (``--appendonly yes --appendfsync always``), so what it acknowledged survives
the kill, as a production Redis holding events must be configured."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.faults.harness import Load, Sidecar, report, state_of, until
from tests.servers import free_port, run_redis

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

COMPONENTS = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - name: redisHost
      value: "{address}"
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
    - name: redisHost
      value: "{address}"
"""
OUTAGE = 3.0  # seconds the server stays down: setup, not an assertion
AFTER = 50  # publishes and saves accepted after the restart, to call it recovered
#: the run's whole log: each of the sidecar's loops says once that Redis is away (it was
#: one line per partition reader per second, 59-65 lines for a 3 s outage)
LOG_LINES = 40


def redis_pid(address: str) -> int:
    import redis

    host, port = address.split(":")
    with redis.Redis(host=host, port=int(port)) as client:
        pid: int = client.info("server")["process_id"]
        return pid


def test_a_redis_killed_under_load_loses_no_accepted_event_or_save(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "redis-data"
    data.mkdir()
    durable = ("--appendonly", "yes", "--appendfsync", "always", "--dir", str(data))
    resources = tmp_path / "components"
    resources.mkdir()
    sidecar = Sidecar(tmp_path / "run", resources)
    load = Load(sidecar, save_state=True)
    try:
        with run_redis(*durable, port=port) as address:
            (resources / "components.yaml").write_text(COMPONENTS.format(address=address))
            sidecar.start()
            load.start()
            until("events delivered", lambda: len(sidecar.handled()) >= AFTER, sidecar.alive)
            os.kill(redis_pid(address), signal.SIGKILL)
            load.phase = "outage"
        time.sleep(OUTAGE)
        with run_redis(*durable, port=port):
            load.phase = "after"
            until("publishes and saves accepted again",
                  lambda: len(load.accepted("publish", "after")) >= AFTER
                  and len(load.accepted("save", "after")) >= AFTER, sidecar.alive)
            load.stop()
            accepted = load.accepted()
            until("every accepted event delivered",
                  lambda: accepted <= sidecar.handled().keys(), sidecar.alive)
            saved = sorted(load.accepted("save"))
            state = state_of(sidecar, [f"s{n}" for n in saved])
            lost_saves = [n for n in saved if state.get(f"s{n}") != n]
            counts = report(
                "redis kill -9", load, sidecar,
                saves={"accepted": len(saved), "lost": len(lost_saves)},
                save_outcomes={phase: dict(load.outcomes("save", phase))
                               for phase in ("before", "outage", "after")},
                recovered_without_restart=sidecar.recovered_without_restart(),
            )
            sidecar.stop()  # while Redis is up: it leaves its groups
    finally:
        load.stop()
        sidecar.stop()
    assert counts["lost"] == 0 and counts["unknown"] == 0
    assert lost_saves == []
    assert counts["recovered_without_restart"]
    assert counts["log_lines"] <= LOG_LINES, sidecar.log.read_text()
