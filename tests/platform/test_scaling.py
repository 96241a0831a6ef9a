"""Scaling out: several ``tether run`` processes with the same app id share the work.

Each run is a real ``python -m tether.cli.main run`` with its own app (scaling_app.py),
ports and folder, and the same resources folder, so they join one consumer group (the app
id) on one broker. Parametrized over the embedded SQLite broker (one file shared by every
sidecar), Kafka (tansu) and Redis, each with its default session timeout (10 s).

A test publishes a stream of numbered events through one run's sidecar, keeping a bounded
backlog (published, not yet handled) so the runs always have work in hand when one joins,
dies or stops, whatever the machine's load. Counting follows the contract suite's
killed-consumer test: every published number must show up in some app's handled.txt and
nothing else may; duplicates are allowed (at-least-once) and reported. Waits poll a
condition with a deadline of minutes: tansu's group joins are slow on a loaded machine,
and the deadline is for hangs, never a claim about speed.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tether.cli.run import free_port

# rebalances on a loaded 2-core machine take tens of seconds on tansu: the per-condition
# deadline is minutes, and the test's ceiling (pytest-timeout) leaves room for several
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
WAIT = 240.0
BACKLOG = 60  # events published and not yet handled, at most (roughly)
BATCH = 20
AFTER = 40  # events published once the group has changed, to prove the takeover
APP = Path(__file__).with_name("scaling_app.py")

COMPONENT = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: {type}
  version: v1
  metadata:
{metadata}
"""


def component(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The pubsub component YAML every run of a test shares."""
    if backend == "embedded":
        kind, meta = "pubsub.tether.embedded", {"path": str(tmp_path / "broker.db")}
    elif backend == "kafka":
        address = request.getfixturevalue("kafka_address")
        # oldest: a group that has not joined yet when the first events arrive still gets them
        kind, meta = "pubsub.kafka", {"brokers": address, "initialOffset": "oldest"}
    else:
        kind, meta = "pubsub.redis", {"redisHost": request.getfixturevalue("redis_address")}
    lines = "\n".join(
        f"    - name: {name}\n      value: {json.dumps(value)}" for name, value in meta.items()
    )
    return COMPONENT.format(type=kind, metadata=lines)


def lines(path: Path) -> list[str]:
    """Whole lines only: an app killed mid-write may leave a partial last line."""
    if not path.exists():
        return []
    text = path.read_text()
    return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]


class Run:
    """One ``tether run --app-id APP`` with scaling_app.py, in its own folder."""

    def __init__(
        self, cwd: Path, app_id: str, resources: Path, topic: str, delay: float, grace: float
    ) -> None:
        cwd.mkdir()
        self.cwd = cwd
        self.name = cwd.name
        self.http_port = free_port()
        self.log = cwd / "tether.log"
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "tether.cli.main", "run", "--app-id", app_id,
                "--app-port", str(free_port()), "--http-port", str(self.http_port),
                "--resources-path", str(resources), "--grace-period", str(grace),
                "--app-port-timeout", str(WAIT),
                "--", sys.executable, str(APP), topic, str(delay),
            ],
            cwd=cwd, stdout=subprocess.DEVNULL, stderr=self._log_file,
        )

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(
                f"tether run {self.name} exited early ({self.proc.returncode}):\n"
                + self.log.read_text()
            )

    def subscribed(self) -> bool:
        url = f"http://127.0.0.1:{self.http_port}/v1.0/metadata"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(json.load(response)["subscriptions"])
        except OSError:
            return False

    def handled(self) -> list[str]:
        return lines(self.cwd / "handled.txt")

    def in_flight(self) -> set[str]:
        """Events the app has received and not finished (yet, or ever if it died)."""
        return set(lines(self.cwd / "received.txt")) - set(self.handled())

    def publish(self, topic: str, numbers: range) -> None:
        """Bulk-publish events {"n": i}, each with its own partition key."""
        entries = [
            {"entryId": str(i), "event": {"n": i}, "contentType": "application/json",
             "metadata": {"partitionKey": f"key-{i}"}}
            for i in numbers
        ]
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/v1.0/publish/bulk/pubsub/{topic}",
            data=json.dumps(entries).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            assert response.status == 204

    def kill(self) -> None:
        """SIGKILL the app's process group and the sidecar at once: nothing says goodbye,
        and the app stops in the middle of what it had received."""
        app_pid = int((self.cwd / "app.pid").read_text())
        os.killpg(app_pid, signal.SIGKILL)
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(WAIT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


class Cluster:
    """Runs of one app id over one resources folder, and the stream of events they share
    (numbered 0..sent-1, on a fresh topic)."""

    def __init__(self, tmp_path: Path, yaml: str) -> None:
        self.tmp_path = tmp_path
        self.app_id = f"scale-{uuid.uuid4().hex[:8]}"
        self.topic = f"orders-{uuid.uuid4().hex[:8]}"
        self.resources = tmp_path / "components"
        self.resources.mkdir()
        (self.resources / "pubsub.yaml").write_text(yaml)
        self.runs: list[Run] = []
        self.sent = 0

    def start(self, name: str, delay: float, *, via: Run | None = None,
              grace: float = 2.0) -> Run:
        """Start a run and wait until its sidecar has subscribed (the stream goes on through
        ``via`` meanwhile, if given)."""
        run = Run(self.tmp_path / name, self.app_id, self.resources, self.topic, delay, grace)
        self.runs.append(run)
        others = [r for r in self.runs if r.proc.poll() is None]
        self.pump(via, f"{name} subscribed", run.subscribed, others)
        return run

    def handled_ids(self) -> set[str]:
        return {n for run in self.runs for n in run.handled()}

    def publish_more(self, via: Run, count: int) -> None:
        via.publish(self.topic, range(self.sent, self.sent + count))
        self.sent += count

    def pump(self, via: Run | None, what: str, check: Callable[[], bool],
             alive: list[Run]) -> None:
        """Poll ``check`` until it holds; meanwhile keep about BACKLOG events published
        and not yet handled (through ``via``; None: publish nothing) and fail if a run in
        ``alive`` exits or the deadline passes."""
        deadline = time.monotonic() + WAIT
        while not check():
            for run in alive:
                run.alive()
            if via is not None and self.sent - len(self.handled_ids()) < BACKLOG:
                self.publish_more(via, BATCH)
            if time.monotonic() > deadline:
                logs = "\n".join(f"== {run.name}\n{run.log.read_text()[-3000:]}"
                                 for run in self.runs)
                pytest.fail(f"timed out waiting for {what} after {WAIT:g}s; "
                            f"{self.summary()}\n{logs}")
            time.sleep(0.1)

    def summary(self) -> str:
        per_run = {run.name: len(run.handled()) for run in self.runs}
        return f"sent {self.sent}, handled {len(self.handled_ids())}, per run {per_run}"

    def every_event_handled(self, alive: list[Run]) -> None:
        """Wait until every published event was handled by some run; nothing unknown was,
        and duplicates (redeliveries after a kill or a rebalance) are only reported."""
        expected = {str(i) for i in range(self.sent)}
        self.pump(None, "every event handled", lambda: expected <= self.handled_ids(), alive)
        assert self.handled_ids() == expected
        counts = collections.Counter(n for run in self.runs for n in run.handled())
        duplicates = sum(c - 1 for c in counts.values())
        print(f"scaling: {self.summary()}, {duplicates} handled twice or more")


@pytest.fixture(params=["embedded", "kafka", "redis"])
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path, component(request.param, tmp_path, request))
    yield made
    for run in made.runs:
        run.stop()


def test_runs_with_one_app_id_split_the_work(cluster: Cluster) -> None:
    a = cluster.start("a", 0.01)
    b = cluster.start("b", 0.01, via=a)
    cluster.pump(a, "both runs handling events", lambda: bool(a.handled() and b.handled()),
                 [a, b])
    cluster.publish_more(a, AFTER)
    cluster.every_event_handled([a, b])


def test_a_killed_run_loses_nothing(cluster: Cluster) -> None:
    victim = cluster.start("victim", 0.02)
    survivor = cluster.start("survivor", 0.02, via=victim)
    both = [victim, survivor]
    cluster.pump(survivor, "both runs handling events",
                 lambda: bool(victim.handled() and survivor.handled()), both)
    cluster.pump(survivor, "the victim in the middle of work",
                 lambda: len(victim.in_flight()) >= 5, both)
    victim.kill()
    unfinished = victim.in_flight()  # received, never handled: the work it died doing
    assert unfinished
    cluster.publish_more(survivor, AFTER)  # some land on the dead run's partitions too
    cluster.pump(survivor, "the survivor finishing the victim's unfinished events",
                 lambda: unfinished <= set(survivor.handled()), [survivor])
    cluster.every_event_handled([survivor])


def test_a_run_added_mid_stream_takes_work_and_loses_nothing(cluster: Cluster) -> None:
    a = cluster.start("a", 0.02)
    b = cluster.start("b", 0.02, via=a)
    cluster.pump(a, "both runs handling events", lambda: bool(a.handled() and b.handled()),
                 [a, b])
    c = cluster.start("c", 0.02, via=a)
    # c can only handle an event once the group has given it partitions: the stream goes on
    # (with a bounded backlog) until it has, however long the rebalance takes
    cluster.pump(a, "the new run handling an event", lambda: bool(c.handled()), [a, b, c])
    done = {run.name: len(run.handled()) for run in (a, b)}
    # and the group has settled with all three: the old runs keep handling their share
    cluster.pump(a, "the old runs handling events after the rebalance",
                 lambda: all(len(run.handled()) > done[run.name] for run in (a, b)), [a, b, c])
    cluster.publish_more(a, AFTER)
    cluster.every_event_handled([a, b, c])


def test_a_run_stopped_mid_stream_hands_over_and_loses_nothing(cluster: Cluster) -> None:
    # a generous grace period: the stopping run finishes what it has in hand
    stay = cluster.start("stay", 0.02, grace=WAIT)
    leave = cluster.start("leave", 0.02, via=stay, grace=WAIT)
    cluster.pump(stay, "both runs handling events",
                 lambda: bool(stay.handled() and leave.handled()), [stay, leave])
    cluster.pump(stay, "the leaving run in the middle of work",
                 lambda: len(leave.in_flight()) >= 3, [stay, leave])
    leave.proc.terminate()  # SIGTERM, as a scheduler scaling down sends it
    cluster.pump(stay, "the leaving run to exit", lambda: leave.proc.poll() is not None, [stay])
    assert leave.proc.returncode == 0, leave.log.read_text()
    assert not leave.in_flight(), "the stopped run left events it had received unfinished"
    cluster.publish_more(stay, AFTER)  # some land on the partitions the leaving run had
    cluster.every_event_handled([stay])
