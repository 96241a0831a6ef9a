"""Latency service invocation adds: a call through two sidecars (caller's and target's,
over the broker) against the same call made on the target app directly, at a paced rate
(default 1,000 requests/s) with a 1 KB body; p50/p90/p99 per backend, in one run. Also the
CPU the ``tether run`` process (both sidecars, not the apps) spends per paced call, and the
calls/s at saturation (``--workers`` closed-loop senders for ``--seconds``) against the app's
own requests/s with the same senders.

Anchor: Dapr v1.17 HTTP invocation adds +1.06 ms p50, +1.48 p90, +2.90 p99 through two
sidecars (docs/benchmarks.md). Usage:

    python bench/invoke.py [--requests 5000] [--rate 1000] [--backends embedded,redis]
                           [--redis 127.0.0.1:6379] [--kafka 127.0.0.1:9092]
                           [--seconds 5] [--workers 32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import RawPool, http_request, paced, percentile, process_cpu, saturate
from pubsub import wait_http

from tether.cli.run import free_port

DAPR_ADDED_MS = {"p50": 1.06, "p90": 1.48, "p99": 2.90}
TARGET = """
import os
from aiohttp import web
async def echo(request):
    return web.Response(body=await request.read(), content_type="application/octet-stream")
async def subscribe(request):
    return web.json_response([])
app = web.Application()
app.router.add_get("/dapr/subscribe", subscribe)
app.router.add_post("/echo", echo)
web.run_app(app, host="127.0.0.1", port=int(os.environ["APP_PORT"]), print=None,
            access_log=None)
"""


def component(backend: str, folder: Path, args: argparse.Namespace) -> dict[str, object]:
    meta: dict[str, str]
    if backend == "embedded":
        kind, meta = "pubsub.tether.embedded", {"path": str(folder / "broker.db")}
    elif backend == "redis":
        kind, meta = "pubsub.redis", {"redisHost": args.redis,
                                      "namespace": f"bench-invoke-{uuid.uuid4().hex[:8]}"}
    else:
        kind, meta = "pubsub.kafka", {"brokers": args.kafka}
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Component",
            "metadata": {"name": "pubsub"},
            "spec": {"type": kind, "version": "v1",
                     "metadata": [{"name": k, "value": v} for k, v in meta.items()]}}


def start(backend: str, folder: Path, args: argparse.Namespace
          ) -> tuple[subprocess.Popen[bytes], int, int]:
    """``tether run -f`` with ``caller`` and ``target``; (process, caller port, app port)."""
    (folder / "components").mkdir()
    (folder / "components" / "pubsub.yaml").write_text(
        yaml.safe_dump(component(backend, folder, args)))
    distinct: set[int] = set()
    while len(distinct) < 4:  # a port the OS hands out twice would clash in the run file
        distinct.add(free_port())
    caller_port, target_port, app_port, caller_app_port = sorted(distinct)
    ports = {"caller": caller_port, "target": target_port}
    apps = []
    for app_id, port in ports.items():
        (folder / app_id).mkdir()
        (folder / app_id / "app.py").write_text(TARGET)
        apps.append({"appID": app_id, "appDirPath": f"./{app_id}", "daprHTTPPort": port,
                     "appPort": app_port if app_id == "target" else caller_app_port,
                     "command": [sys.executable, "app.py"]})
    (folder / "dapr.yaml").write_text(yaml.safe_dump(
        {"version": 1, "common": {"resourcesPath": "./components"}, "apps": apps}))
    log = (folder / "tether.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "tether.cli.main", "run", "-f",
                                "dapr.yaml"], cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{ports['caller']}/v1.0/healthz", process, folder / "tether.log")
    return process, ports["caller"], app_port


def echo_pool(port: int, path: str) -> RawPool:
    body = os.urandom(512).hex().encode()  # 1 KB
    return RawPool("127.0.0.1", port, http_request("POST", path, f"127.0.0.1:{port}", body,
                                                    "application/octet-stream"))


async def measure(port: int, path: str, count: int, rate: float) -> dict[str, float]:
    pool = echo_pool(port, path)
    statuses: list[int] = []

    async def send(_: int) -> None:
        statuses.append(await pool.send())

    # warm up: connections, the reply subscription, the group settled
    for _ in range(200):
        await pool.send()
    latencies, _, _ = await paced(count, rate, send)
    pool.close()
    bad = [s for s in statuses if s != 200]
    if bad:
        raise RuntimeError(f"{len(bad)} calls failed (first status {bad[0]})")
    ordered = sorted(latencies)
    return {q: percentile(ordered, v) * 1000 for q, v in
            (("p50", 0.50), ("p90", 0.90), ("p99", 0.99))}


async def throughput(port: int, path: str, seconds: float, workers: int) -> float:
    """Calls/s with ``workers`` senders each sending its next call once answered."""
    pool = echo_pool(port, path)
    failed: list[int] = []

    async def send() -> None:
        status = await pool.send()
        if status != 200:
            failed.append(status)

    done, elapsed = await saturate(seconds, workers, send)
    pool.close()
    if failed:
        raise RuntimeError(f"{len(failed)} calls failed at saturation (first {failed[0]})")
    return done / elapsed


async def ready(port: int) -> None:
    """Calls answered end to end (the target's sidecar joined its group)."""
    pool = RawPool("127.0.0.1", port, http_request(
        "POST", "/v1.0/invoke/target/method/echo", f"127.0.0.1:{port}", b"x"))
    deadline = time.monotonic() + 90
    while await pool.send() != 200:
        if time.monotonic() > deadline:
            raise TimeoutError("the target never answered")
        await asyncio.sleep(0.2)
    pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--backends", default="embedded,redis")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--kafka", default="127.0.0.1:9092")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="length of each saturation run")
    parser.add_argument("--workers", type=int, default=32,
                        help="closed-loop senders at saturation")
    args = parser.parse_args()
    print(f"load average: {Path('/proc/loadavg').read_text().strip()}")
    print(f"{args.requests} requests at {args.rate:g}/s, 1 KB body; ms")
    print(f"{'backend':10} {'path':8} {'p50':>7} {'p90':>7} {'p99':>7}")
    invoke_path = "/v1.0/invoke/target/method/echo"
    extra: list[str] = []
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix=f"bench-invoke-{backend}-") as tmp:
            process, caller, app_port = start(backend, Path(tmp), args)
            try:
                asyncio.run(ready(caller))
                direct = asyncio.run(measure(app_port, "/echo", args.requests, args.rate))
                cpu = process_cpu(process.pid)
                through = asyncio.run(measure(caller, invoke_path, args.requests, args.rate))
                # the warm-up's calls count too
                per_call = (process_cpu(process.pid) - cpu) / (args.requests + 200) * 1e6
                app_rate = asyncio.run(throughput(app_port, "/echo", args.seconds,
                                                  args.workers))
                invoke_rate = asyncio.run(throughput(caller, invoke_path, args.seconds,
                                                     args.workers))
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
        added = {q: through[q] - direct[q] for q in direct}
        for name, row in (("direct", direct), ("invoke", through), ("added", added)):
            print(f"{backend:10} {name:8} " + " ".join(f"{row[q]:7.2f}" for q in row))
        print(f"{backend:10} {'/dapr':8} " + " ".join(
            f"{added[q] / DAPR_ADDED_MS[q]:6.1f}x" for q in added))
        extra.append(f"{backend:10} sidecars' CPU per paced call {per_call:.0f} us; at saturation "
                     f"({args.workers} senders) {invoke_rate:,.0f} calls/s invoked, "
                     f"{app_rate:,.0f} req/s direct ({invoke_rate / app_rate:.0%})")
    print("\n".join(extra))


if __name__ == "__main__":
    main()
