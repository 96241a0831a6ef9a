"""A restart of the Kafka broker (tansu) under a steady publish load against a real
``tether run``, on the same port.

tansu's memory engine keeps nothing across a restart: the topic, its records and the
consumer group are gone. Events accepted before the restart that the subscriber had not
fetched yet are lost by the broker itself (a real Kafka keeps them): they are counted
apart. Every event accepted from the moment the old broker was down must be delivered, with
the same sidecar process (no restart), and its log must stay short."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from tests.faults.harness import Load, Sidecar, report, until
from tests.servers import free_port, run_tansu

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

COMPONENT = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.kafka
  version: v1
  metadata:
    - name: brokers
      value: "{address}"
"""
OUTAGE = 2.0  # seconds the broker stays down: setup, not an assertion
AFTER = 50  # publishes accepted after the restart, to call it recovered
#: the sidecar's log over the whole test (start, outage, recovery, stop) stays under this:
#: aiokafka's repeats are cut, and Tether says once that it lost the group and once that
#: it is back (it was 3,137 lines of failed commits in two minutes)
LOG_LINES = 60


def test_a_kafka_broker_restarted_under_load_loses_nothing_accepted_after(
    tmp_path: Path,
) -> None:
    port = free_port()
    resources = tmp_path / "components"
    resources.mkdir()
    sidecar = Sidecar(tmp_path / "run", resources)
    load = Load(sidecar)
    with contextlib.ExitStack() as broker:
        try:
            address = broker.enter_context(run_tansu(port=port))
            (resources / "pubsub.yaml").write_text(COMPONENT.format(address=address))
            sidecar.start()
            load.start()
            until("events delivered", lambda: len(sidecar.handled()) >= AFTER, sidecar.alive)
            broker.close()  # the broker stops: from here a publish can only reach the new one
            load.phase = "outage"
            time.sleep(OUTAGE)
            broker.enter_context(run_tansu(port=port))
            load.phase = "after"
            until("publishes accepted again",
                  lambda: len(load.accepted("publish", "after")) >= AFTER, sidecar.alive)
            load.stop()
            must_arrive = load.accepted(phase="outage") | load.accepted(phase="after")
            until("every event accepted since the broker went down delivered",
                  lambda: must_arrive <= sidecar.handled().keys(), sidecar.alive)
            before = load.accepted(phase="before")
            counts = report(
                "kafka restart", load, sidecar,
                lost_by_the_broker=len(before - sidecar.handled().keys()),
                recovered_without_restart=sidecar.recovered_without_restart(),
            )
            sidecar.stop()  # while the broker is up: it leaves its group
        finally:
            load.stop()
            sidecar.stop()
    assert counts["lost"] == counts["lost_by_the_broker"]  # the only loss: tansu's memory
    assert counts["unknown"] == 0
    assert counts["recovered_without_restart"]
    assert counts["log_lines"] <= LOG_LINES, sidecar.log.read_text()
