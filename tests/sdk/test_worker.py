"""``tether worker`` as a real process tree on an embedded broker file: two children split
the work, a SIGKILLed child is restarted and its events are still handled, SIGTERM stops
everything with exit code 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tether.brokers import open_broker
from tether.platform.events import CloudEvent

WAIT = 60.0
ROOT = Path(__file__).resolve().parents[2]


def children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return set()
    return {int(p) for p in text.split()}


def handled(out: Path) -> list[tuple[int, str]]:
    if not out.exists():
        return []
    lines = out.read_text().splitlines()
    return [(int(pid), event_id) for pid, event_id in (line.split() for line in lines)]


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - polls state no event signals
            await asyncio.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead too: it only waits for its parent to reap it
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(")")[-1].split()[0] != "Z"


async def test_worker_replicas_survive_sigkill_and_stop_on_sigterm(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path / 'broker.db'}?session_timeout=3&heartbeat_interval=0.3"
    out = tmp_path / "handled.txt"
    env = {**os.environ, "TETHER_SAMPLE_OUT": str(out)}
    log = (tmp_path / "worker.log").open("wb")
    parent = subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "worker", "tests.sdk.sample_app:app",
         "--replicas", "2", "--broker", url, "--grace", "20"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        await until(lambda: len(children(parent.pid)) == 2)
        first = children(parent.pid)
        sent: list[str] = []
        async with open_broker(url) as broker:
            for n in range(200):
                event = CloudEvent(type="test", source="test", data={"n": n},
                                   extensions={"partitionkey": f"k{n}"})
                await broker.publish("work", event)
                sent.append(event.id)
                if n == 100:
                    await until(lambda: len(handled(out)) >= 20)
                    victim = next(iter({pid for pid, _ in handled(out)} & first))
                    os.kill(victim, signal.SIGKILL)
            await until(lambda: {i for _, i in handled(out)} >= set(sent))
        # the killed child was replaced
        await until(lambda: len(children(parent.pid) - first) == 1)
        assert victim not in children(parent.pid)
        assert len(children(parent.pid)) == 2
        # both children did work (they split the partitions of one consumer group)
        assert len({pid for pid, _ in handled(out)} & first) == 2
        assert {i for _, i in handled(out)} == set(sent)

        workers = children(parent.pid)
        parent.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(parent.wait, WAIT) == 0
        assert not any(alive(pid) for pid in workers)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in children(parent.pid):
            os.kill(pid, signal.SIGKILL)
        log.close()


async def test_worker_serves_its_series_on_the_metrics_port(tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from tether.cli.run import free_port

    url = f"embedded://{tmp_path / 'broker.db'}"
    out = tmp_path / "handled.txt"
    port = free_port()
    log = (tmp_path / "worker.log").open("wb")
    parent = subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "worker", "tests.sdk.sample_app:app",
         "--broker", url, "--metrics-port", str(port)],
        cwd=ROOT, env={**os.environ, "TETHER_SAMPLE_OUT": str(out)}, stdout=log,
        stderr=subprocess.STDOUT,
    )

    def delivered() -> float:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return -1.0
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "dapr_component_pubsub_ingress_count_total"
                   and s.labels["app_id"] == "sample" and s.labels["topic"] == "work"
                   and s.labels["process_status"] == "success")

    try:
        await until(lambda: delivered() >= 0)  # child 0 listens on the port itself
        async with open_broker(url) as broker:
            for n in range(5):
                await broker.publish("work", CloudEvent(type="t", source="t", data={"n": n}))
        await until(lambda: len(handled(out)) == 5)
        await until(lambda: delivered() == 5)
        parent.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(parent.wait, WAIT) == 0
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        log.close()
