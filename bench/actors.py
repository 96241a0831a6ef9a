"""Actors through the sidecar: method calls at a paced rate (default 500 calls/s) to new
actors (each call activates one: Dapr's "activation" figure) and to warm ones, calls/s at
saturation, the ``tether run`` process's CPU per call, and reminders fired per second.

Anchors (Dapr v1.17, docs/benchmarks.md): activation at 500 QPS p50 2.30 / p90 2.98 /
p99 6.89 ms; reminder triggering 15,463/s (on a cluster, with the Scheduler service).
Tether's calls travel on the broker (the actor type's topic, keyed by id) to the sidecar
that owns the id's partition; here the caller's and the host's sidecar are one process.

    python bench/actors.py [--requests 5000] [--rate 500] [--backends embedded,redis]
                           [--redis 127.0.0.1:6379] [--reminders 2000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import RawPool, http_request, paced, percentile, process_cpu, saturate
from pubsub import wait_http

from tether.cli.run import free_port

DAPR_ACTIVATION_MS = {"p50": 2.30, "p90": 2.98, "p99": 6.89}
DAPR_REMINDERS_PER_S = 15463.0
APP = """
import json, os, time
from aiohttp import web
fires = {"count": 0, "first": 0.0, "last": 0.0}
async def config(request):
    return web.json_response({"entities": ["Bench"], "actorIdleTimeout": "1h",
                              "actorScanInterval": "30s"})
async def method(request):
    await request.read()
    return web.json_response("ok")
async def remind(request):
    await request.read()
    now = time.time()
    fires["count"] += 1
    fires["first"] = fires["first"] or now
    fires["last"] = now
    return web.Response()
async def stats(request):
    return web.json_response(fires)
async def deactivate(request):
    return web.Response()
app = web.Application()
app.router.add_get("/dapr/config", config)
app.router.add_get("/stats", stats)
app.router.add_put("/actors/Bench/{id}/method/remind/{name}", remind)
app.router.add_put("/actors/Bench/{id}/method/{m}", method)
app.router.add_delete("/actors/Bench/{id}", deactivate)
web.run_app(app, host="127.0.0.1", port=int(os.environ["APP_PORT"]), print=None,
            access_log=None)
"""


def components(backend: str, folder: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    def component(name: str, kind: str, meta: dict[str, str]) -> dict[str, object]:
        return {"apiVersion": "dapr.io/v1alpha1", "kind": "Component",
                "metadata": {"name": name},
                "spec": {"type": kind, "version": "v1",
                         "metadata": [{"name": k, "value": v} for k, v in meta.items()]}}

    if backend == "embedded":
        pubsub = component("pubsub", "pubsub.tether.embedded", {"path": str(folder / "b.db")})
        store = component("store", "state.sqlite", {"connectionString": str(folder / "s.db"),
                                                    "actorStateStore": "true"})
    else:
        tag = f"bench-actors-{uuid.uuid4().hex[:8]}"
        pubsub = component("pubsub", "pubsub.redis", {"redisHost": args.redis,
                                                      "namespace": tag})
        store = component("store", "state.redis", {"redisHost": args.redis,
                                                   "keyPrefix": "name",
                                                   "actorStateStore": "true"})
    return [pubsub, store]


def start(backend: str, folder: Path, args: argparse.Namespace
          ) -> tuple[subprocess.Popen[bytes], int, int]:
    (folder / "components").mkdir()
    (folder / "components" / "all.yaml").write_text(
        yaml.safe_dump_all(components(backend, folder, args)))
    (folder / "app.py").write_text(APP)
    port, app_port = free_port(), free_port()
    log = (folder / "tether.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "run", "-a", "bench-actors", "-p",
         str(app_port), "-H", str(port), "--enable-metrics", "false", "-d", "components",
         "--", sys.executable, "app.py"],
        cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/v1.0/healthz", process, folder / "tether.log")
    return process, port, app_port


def call_request(port: int, actor_id: str) -> bytes:
    return http_request("PUT", f"/v1.0/actors/Bench/{actor_id}/method/work",
                        f"127.0.0.1:{port}", b'{"n":1}')


async def ready(port: int) -> None:
    pool = RawPool("127.0.0.1", port, call_request(port, "warm"))
    deadline = time.monotonic() + 90
    while await pool.send() != 200:
        if time.monotonic() > deadline:
            raise TimeoutError("the actor host never answered")
        await asyncio.sleep(0.2)
    pool.close()


async def measure(port: int, ids: list[str], count: int, rate: float) -> dict[str, float]:
    pool = RawPool("127.0.0.1", port, b"")
    requests = [call_request(port, ids[i % len(ids)]) for i in range(count)]
    statuses: list[int] = []

    async def send(i: int) -> None:
        statuses.append(await pool.send(requests[i]))

    latencies, _, _ = await paced(count, rate, send)
    pool.close()
    bad = [s for s in statuses if s != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} calls failed (first status {bad[0]})")
    ordered = sorted(latencies)
    return {q: percentile(ordered, v) * 1000 for q, v in
            (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))}


async def throughput(port: int, seconds: float, workers: int) -> float:
    pool = RawPool("127.0.0.1", port, b"")
    requests = [call_request(port, f"sat-{i}") for i in range(1000)]
    counter = 0
    failed: list[int] = []

    async def send() -> None:
        nonlocal counter
        counter += 1
        status = await pool.send(requests[counter % len(requests)])
        if status != 200:
            failed.append(status)

    done, elapsed = await saturate(seconds, workers, send)
    pool.close()
    if failed:
        raise RuntimeError(f"{len(failed)} calls failed at saturation (first {failed[0]})")
    return done / elapsed


def _stats(app_port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{app_port}/stats") as answer:
        stats: dict[str, float] = json.loads(answer.read())
        return stats


async def reminders(port: int, app_port: int, count: int) -> float:
    """Register ``count`` one-shot reminders due together; fires/s from first to last."""
    pool = RawPool("127.0.0.1", port, b"")
    due = (time.time() + 5 + count / 1000)
    when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(due)) + "Z"
    body = json.dumps({"dueTime": when}).encode()

    async def register(i: int) -> None:
        request = http_request("POST", f"/v1.0/actors/Bench/rem-{i}/reminders/r",
                               f"127.0.0.1:{port}", body)
        status = await pool.send(request)
        if status != 204:
            raise RuntimeError(f"reminder registration answered {status}")

    for start in range(0, count, 100):
        await asyncio.gather(*(register(i) for i in range(start, min(start + 100, count))))
    pool.close()
    deadline = time.time() + 120 + count / 100
    stats: dict[str, float] = {}
    while time.time() < deadline:
        stats = await asyncio.to_thread(_stats, app_port)
        if stats["count"] >= count:
            break
        await asyncio.sleep(0.5)
    if stats.get("count", 0) < count:
        raise RuntimeError(f"only {stats.get('count')} of {count} reminders fired")
    span = max(stats["last"] - stats["first"], 1e-3)
    return count / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--backends", default="embedded,redis")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--reminders", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    print(f"{args.requests} calls at {args.rate:g}/s; ms")
    print(f"{'backend':10} {'calls':12} {'p50':>7} {'p90':>7} {'p99':>7}")
    extra: list[str] = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-actors-{backend}-") as tmp:
            process, port, app_port = start(backend, Path(tmp), args)
            try:
                asyncio.run(ready(port))
                # warm up: connections, the reply subscription, the group settled
                asyncio.run(measure(port, [f"warmup-{i}" for i in range(50)], 500, args.rate))
                cpu = process_cpu(process.pid)
                fresh = asyncio.run(measure(port, [f"new-{i}" for i in range(args.requests)],
                                            args.requests, args.rate))
                per_call = (process_cpu(process.pid) - cpu) / args.requests * 1e6
                warm = asyncio.run(measure(port, [f"new-{i}" for i in range(100)],
                                           args.requests, args.rate))
                rate = asyncio.run(throughput(port, args.seconds, args.workers))
                fired = asyncio.run(reminders(port, app_port, args.reminders))
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
        for name, row in (("activation", fresh), ("warm", warm)):
            print(f"{backend:10} {name:12} " + " ".join(f"{row[q]:7.2f}" for q in row))
        print(f"{backend:10} {'/dapr':12} " + " ".join(
            f"{fresh[q] / DAPR_ACTIVATION_MS[q]:6.1f}x" for q in fresh))
        extra.append(f"{backend:10} sidecar CPU per activation call {per_call:.0f} us; "
                     f"{rate:,.0f} calls/s at saturation ({args.workers} senders); "
                     f"reminders fired {fired:,.0f}/s ({fired / DAPR_REMINDERS_PER_S:.2f}x "
                     f"Dapr's {DAPR_REMINDERS_PER_S:,.0f}/s)")
    print("\n".join(extra))


if __name__ == "__main__":
    main()
