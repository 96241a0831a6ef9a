"""The HTTP floor of the sidecar: bare HTTP stacks answering 204 against a Dapr publish
through ``tether run``, CPU per request at a fixed rate and at saturation, in one run.

    .venv/bin/python bench/http_floor.py [--seconds 5] [--rate 1000] [--connections 8]
                                         [--only aiohttp sidecar ...] [--client raw|aiohttp]
                                         [--profile 10 [--profile-mode gil|active]]

Every server gets the same request: ``POST /v1.0/publish/pubsub/TOPIC`` with a 200-byte JSON
body. The floors (bench/_floor_servers.py, each in its own process on 127.0.0.1) read the body
and answer 204 with nothing else to do:

    aiohttp         aiohttp.web on asyncio (the sidecar's stack today)
    aiohttp-uvloop  the same on uvloop
    uvicorn         uvicorn with httptools and uvloop, a raw ASGI callable
    granian-rsgi    granian, one worker, one runtime thread, RSGI (its native interface)
    granian-asgi    the same with the ASGI callable
    sidecar         ``tether run`` on the embedded broker: a real Dapr publish, 204 as well
    sidecar-uvloop  the same ``tether run`` with uvloop as asyncio's event loop

Phases per server, each after a warm-up: (a) open loop at --rate req/s for --seconds: server
CPU per request, latency p50/p99; (b) closed loop with --connections connections for
--seconds: requests/s and server CPU per request. The server's CPU is read from /proc (user +
system, summed over its process tree) by the load generator around the measured window; the
load generator is its own process on uvloop, with a raw keep-alive HTTP/1.1 client by default
(``--client aiohttp`` uses aiohttp's client instead, for comparison). "core" is the server's
CPU over the wall time of the saturation phase: near 100% means the server was the
bottleneck, well below means the load generator (or the other core's load) was.

``--profile SECONDS`` then records the sidecar with py-spy (--nonblocking, never pausing it)
under the same open-loop load and prints its self time grouped by package and the top
functions, beside the CPU of its main thread and other threads from /proc. By default only
the thread holding the GIL is sampled (``--profile-mode gil``): on a shared 2-core machine a
thread that has been woken but waits for a core looks active to py-spy, so the ``active``
mode counts part of the waiting in epoll and in the executor's queue as CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

from _load import (  # noqa: E402
    RawPool,
    http_request,
    paced,
    percentile,
    saturate,
    thread_cpu,
    tree_cpu,
)
from pubsub import PUBSUB, TETHER, create_topics, open_backend, payload, sidecar  # noqa: E402

from tests.servers import free_port  # noqa: E402

FLOORS = ("aiohttp", "aiohttp-uvloop", "uvicorn", "granian-rsgi", "granian-asgi")
SIDECARS = ("sidecar", "sidecar-uvloop")
SERVERS = (*FLOORS, *SIDECARS)
#: ``tether run`` with uvloop as asyncio's loop (asyncio.run takes the policy's loop): what
#: staying on aiohttp but switching the loop would give, with no change to Tether
TETHER_UVLOOP = [sys.executable, "-c", "import asyncio, uvloop; "
                 "asyncio.set_event_loop_policy(uvloop.EventLoopPolicy()); "
                 "from tether.cli.main import main; main()"]
BODY = json.dumps(payload(1), separators=(",", ":")).encode()


@dataclass(frozen=True)
class Target:
    name: str
    port: int
    pid: int
    path: str


# --- the servers ---------------------------------------------------------------------------------
def floor_command(name: str, port: int) -> list[str]:
    if name.startswith("granian-"):
        return [sys.executable, "-m", "granian", "--interface", name.removeprefix("granian-"),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--runtime-threads", "1", "--loop", "uvloop", "--http", "1", "--no-ws",
                "--log-level", "warning", "--working-dir", str(BENCH),
                f"_floor_servers:{name.removeprefix('granian-')}_app"]
    return [sys.executable, str(BENCH / "_floor_servers.py"), name, str(port)]


def wait_ready(port: int, path: str, process: subprocess.Popen[bytes], log: Path,
               timeout: float = 60) -> None:
    """Until one real request is answered 204."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n"
                               f"{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                connection.request("POST", path, BODY, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                if response.status == 204:
                    return
                raise RuntimeError(f"server answered {response.status}")
            finally:
                connection.close()
        time.sleep(0.1)
    raise TimeoutError(f"port {port} did not answer within {timeout}s")


@contextlib.contextmanager
def serve(name: str, folder: Path) -> Iterator[Target]:
    path = f"/v1.0/publish/{PUBSUB}/floor-{uuid.uuid4().hex[:8]}"
    if name in SIDECARS:
        command = TETHER_UVLOOP if name == "sidecar-uvloop" else TETHER
        with open_backend("embedded", folder) as backend:
            asyncio.run(create_topics(backend, path.rsplit("/", 1)[1]))
            with sidecar(backend, folder, tether=command) as running:
                port = int(running.base.rsplit(":", 1)[1])
                yield Target(name, port, running.pid, path)
        return
    port = free_port()
    log_path = folder / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(floor_command(name, port), stdout=log,
                                   stderr=subprocess.STDOUT, cwd=BENCH)
        try:
            wait_ready(port, path, process, log_path)
            yield Target(name, port, process.pid, path)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# --- the load generator (its own process) -------------------------------------------------------
def make_sender(spec: dict[str, Any]) -> tuple[Callable[[], Awaitable[int]],
                                               Callable[[], Awaitable[None]]]:
    """The request as a coroutine function returning the status, and how to close it."""
    host, port, path = "127.0.0.1", spec["port"], spec["path"]
    if spec["client"] == "raw":
        pool = RawPool(host, port, http_request("POST", path, f"{host}:{port}", BODY))

        async def close_pool() -> None:
            pool.close()

        return pool.send, close_pool
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url, headers = f"http://{host}:{port}{path}", {"Content-Type": "application/json"}

    async def send() -> int:
        async with session.post(url, data=BODY, headers=headers) as response:
            await response.read()
            return response.status

    return send, session.close


async def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    send, close = make_sender(spec)

    async def checked(_: int = 0) -> None:
        status = await send()
        if status != 204:
            raise RuntimeError(f"{spec['path']} answered {status}")

    rate, seconds, warmup = spec["rate"], spec["seconds"], spec["warmup"]
    try:
        if spec["mode"] == "open":
            await paced(max(1, int(rate * warmup)), rate, checked)
            server, own = tree_cpu(spec["pid"]), time.process_time()
            latencies, lags, elapsed = await paced(max(1, int(rate * seconds)), rate, checked)
            requests = len(latencies)
        else:
            await saturate(warmup, spec["connections"], checked)
            server, own = tree_cpu(spec["pid"]), time.process_time()
            requests, elapsed = await saturate(seconds, spec["connections"], checked)
            latencies = lags = [0.0]
        server, own = tree_cpu(spec["pid"]) - server, time.process_time() - own
    finally:
        await close()
    latencies.sort()
    lags.sort()
    return {"requests": requests, "elapsed": elapsed, "rate": requests / elapsed,
            "server_cpu": server / requests, "loadgen_cpu": own / requests,
            "core": server / elapsed, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "lag_p99": percentile(lags, 0.99)}


def run_loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run([sys.executable, __file__, "--role", "loadgen", "--spec",
                             json.dumps(spec)], stdout=subprocess.PIPE, check=True)
    answer: dict[str, Any] = json.loads(result.stdout.decode().strip().splitlines()[-1])
    return answer


def loadgen_main(spec: dict[str, Any]) -> None:
    import uvloop

    # the load generator's own loop: uvloop keeps its CPU per request low
    print(json.dumps(uvloop.run(loadgen(spec))), flush=True)


# --- the table -----------------------------------------------------------------------------------
def measure(target: Target, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    common = {"port": target.port, "pid": target.pid, "path": target.path,
              "client": args.client, "rate": args.rate, "seconds": args.seconds,
              "warmup": args.warmup, "connections": args.connections}
    return {mode: run_loadgen({**common, "mode": mode}) for mode in ("open", "closed")}


def ratio(a: float, b: float) -> str:
    return f"{a / b:5.2f}x" if b > 0 else "    -"


def report(results: dict[str, dict[str, dict[str, Any]]], args: argparse.Namespace) -> None:
    print(f"\n{'server':<15} | open loop {args.rate:,.0f} req/s: CPU us/req  p50 ms  p99 ms  "
          f"sent/s | closed loop, {args.connections} connections: req/s  CPU us/req  core  "
          f"loadgen us/req")
    for name, r in results.items():
        o, c = r["open"], r["closed"]
        print(f"{name:<15} | {o['server_cpu'] * 1e6:>28.0f}  {o['p50'] * 1e3:6.2f}  "
              f"{o['p99'] * 1e3:6.2f}  {o['rate']:6,.0f} | {c['rate']:>34,.0f}  "
              f"{c['server_cpu'] * 1e6:>10.0f}  {c['core']:4.0%}  {c['loadgen_cpu'] * 1e6:>14.0f}")
    floors = [name for name in results if name not in SIDECARS]
    if not floors:
        return
    for mode, label in (("open", f"at {args.rate:,.0f} req/s"), ("closed", "at saturation")):
        fastest = min(floors, key=lambda name: results[name][mode]["server_cpu"])
        best = results[fastest][mode]["server_cpu"]
        base = results.get("aiohttp", {}).get(mode, {}).get("server_cpu", 0.0)
        print(f"\nCPU per request {label}: ratio to the fastest floor ({fastest}) and to aiohttp")
        for name, r in results.items():
            cpu = r[mode]["server_cpu"]
            print(f"    {name:<15} {ratio(cpu, best)} of {fastest:<15} {ratio(cpu, base)} of "
                  f"aiohttp")
        for car in (name for name in SIDECARS if name in results):
            sidecar_cpu = results[car][mode]["server_cpu"]
            print(f"    {car} CPU per publish / each floor's CPU per request: " + ", ".join(
                f"{name} {sidecar_cpu / results[name][mode]['server_cpu']:.2f}x"
                for name in floors))


# --- the py-spy profile --------------------------------------------------------------------------
#: modules folded into one group: the event loop's poll is asyncio's, the executor's threads
#: (SQLite runs there) one group
GROUPS = {"selectors": "asyncio", "concurrent": "threads", "threading": "threads",
          "queue": "threads", "_weakrefset": "threads"}


def package_of(filename: str) -> str:
    """The top-level package (or stdlib module) of a frame's file, ``tether.<layer>`` for
    Tether's; py-spy shortens paths to the part after sys.path's entry."""
    path = filename.replace("\\", "/")
    for marker in ("/site-packages/", "/dist-packages/", "/lib/python3"):
        if marker in path:  # an absolute path py-spy left as is
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = path.split("/", 1)[-1]
            break
    if path.startswith("<frozen"):
        return "frozen"
    parts = path.lstrip("/").split("/")
    if not parts[0]:
        return "?"
    if parts[0] == "tether" and len(parts) > 1:
        return "tether." + parts[1].removesuffix(".py")
    return parts[0].removesuffix(".py")


def group_of(package: str) -> str:
    head = package.split(".", 1)[0]
    return GROUPS.get(head, head)


def summarise_profile(raw: Path, top: int = 20) -> None:
    """py-spy's raw (collapsed) output: ``frame;frame;...;leaf count`` per line; self time
    is the leaf's."""
    by_package: Counter[str] = Counter()
    by_function: Counter[tuple[str, str]] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]  # "function (file.py:123)"
        if ";" not in stack:  # only py-spy's "process PID:..." entry: no Python frame
            leaf = "(native code, no Python frame) (?:0)"
        function, _, where = leaf.partition(" (")
        filename = where.rsplit(":", 1)[0]
        package = package_of(filename)
        by_package[package] += int(count)
        by_function[(package, f"{function} ({Path(filename).name})")] += int(count)
        total += int(count)
    if not total:
        print("    py-spy recorded no samples")
        return
    groups: Counter[str] = Counter()
    for package, count in by_package.items():
        groups[group_of(package)] += count
    print(f"    {total:,} samples; self time by package: " + ", ".join(
        f"{package} {count / total:.0%}" for package, count in groups.most_common(12)))
    tether = [(p, c) for p, c in by_package.most_common() if p.startswith("tether")]
    if tether:
        print("    tether by module: " + ", ".join(f"{p} {c / total:.1%}" for p, c in tether[:10]))
    print(f"    top {top} functions by self time:")
    for (package, function), count in by_function.most_common(top):
        print(f"      {count / total:6.1%}  {package:<16} {function}")


def profile(args: argparse.Namespace, folder: Path) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    raw = folder / "sidecar.pyspy.txt"
    with serve("sidecar", folder) as target:
        spec = {"port": target.port, "pid": target.pid, "path": target.path,
                "client": args.client, "rate": args.rate, "seconds": args.profile + 2,
                "warmup": args.warmup, "connections": args.connections, "mode": "open"}
        loader = subprocess.Popen([sys.executable, __file__, "--role", "loadgen", "--spec",
                                   json.dumps(spec)], stdout=subprocess.DEVNULL)
        try:
            time.sleep(args.warmup + 1)
            threads, started = thread_cpu(target.pid), time.perf_counter()
            # --nonblocking: the sidecar is never paused, so the load sees no extra latency
            recorded = subprocess.run(
                [py_spy, "record", "--pid", str(target.pid), "--duration", str(args.profile),
                 "--format", "raw", "--output", str(raw), "--rate", "200", "--nonblocking",
                 *(["--gil"] if args.profile_mode == "gil" else []),
                 "--subprocesses"],
                capture_output=True, text=True)
            after, elapsed = thread_cpu(target.pid), time.perf_counter() - started
        finally:
            loader.wait()
    print(f"\npy-spy profile ({args.profile_mode}) of the sidecar (tether run, embedded) under "
          f"{args.rate:,.0f} publishes/s for {args.profile} s:")
    if recorded.returncode != 0 or not raw.exists():
        print(f"    py-spy failed ({recorded.returncode}): {recorded.stderr.strip()[-500:]}")
        return
    used = {tid: after[tid] - threads.get(tid, 0.0) for tid in after}
    main = used.pop(target.pid, 0.0)
    print(f"    CPU over the window (/proc): main thread {main / elapsed:.0%} of a core, "
          f"{len(used)} other threads {sum(used.values()) / elapsed:.0%}")
    summarise_profile(raw)
    if args.profile_output:
        shutil.copy(raw, args.profile_output)
        print(f"    raw samples copied to {args.profile_output}")


# --- main ----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1, help="warm-up seconds per phase")
    parser.add_argument("--rate", type=float, default=1000, help="open loop requests/s")
    parser.add_argument("--connections", type=int, default=8, help="closed loop connections")
    parser.add_argument("--only", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--client", choices=["raw", "aiohttp"], default="raw",
                        help="the load generator's HTTP client")
    parser.add_argument("--profile", type=int, default=0,
                        help="then py-spy the sidecar for this many seconds (0: no profile)")
    parser.add_argument("--profile-mode", choices=["gil", "active"], default="gil",
                        help="gil: samples of the thread holding the GIL (Python's CPU); "
                             "active: every thread py-spy sees running (waits leak in)")
    parser.add_argument("--profile-output", help="keep py-spy's raw samples in this file")
    parser.add_argument("--role", choices=["loadgen"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "loadgen":
        loadgen_main(json.loads(args.spec))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds: servers are stopped
    print(f"HTTP floor: POST /v1.0/publish/{PUBSUB}/TOPIC, {len(BODY)}-byte JSON body, answered "
          f"204; {os.cpu_count()} cores; load generator: own process, uvloop, {args.client} "
          f"client; {args.seconds:g} s per phase after {args.warmup:g} s warm-up", flush=True)
    print(f"loadavg at start: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="tether-floor-") as tmp:
        for name in (name for name in SERVERS if name in args.only):
            with serve(name, Path(tmp)) as target:
                results[name] = measure(target, args)
            print(f"  measured {name}", flush=True)
        report(results, args)
        if args.profile:
            profile(args, Path(tmp))
    print(f"\nloadavg at end: {Path('/proc/loadavg').read_text().strip()}", flush=True)


if __name__ == "__main__":
    main()
