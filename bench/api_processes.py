"""``tether run --api-processes N``: saturation throughput of publish and state get with 1
and 2 API processes, in one run, and the ratio.

    .venv/bin/python bench/api_processes.py [--backends embedded redis] [--ops publish get]
                                            [--processes 1 2] [--seconds 8] [--connections 64]

For each backend a real ``tether run`` (the sidecar alone) serves a pub/sub component
``pubsub`` and a state component ``statestore``: embedded is ``pubsub.tether.embedded`` and
``state.sqlite`` (files in a temp dir), redis is ``pubsub.redis`` and ``state.redis`` on a
redis-server started here. Per process count and operation a load generator in a process of
its own keeps ``--connections`` keep-alive connections busy (closed loop, each connection
sends its next request when the answer is in) for ``--warmup`` then ``--seconds`` seconds:

    publish   POST /v1.0/publish/pubsub/bench, a 200-byte JSON body (no subscriber)
    get       GET /v1.0/state/statestore/k<i>, 100 keys saved beforehand

The load generator is a bare asyncio protocol with pre-encoded requests, so it costs a
fraction of what the sidecar does per request; it still needs CPU on the same machine, so
each row prints, besides the raw req/s, the CPU per request of the sidecar (all its
processes, from /proc) and of the generator, and the sidecar's throughput ceiling: the
cores it can use (min(N, cores)) divided by its CPU per request. The ratio lines compare N
processes with 1 on both: the raw ratio is what this machine gave with the generator
competing for the cores, the ceiling ratio what the sidecar would give with the cores to
itself. Record the figures in docs/benchmarks.md ("API processes").
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.processes import children  # noqa: E402
from tests.servers import free_port, run_redis  # noqa: E402

TETHER = [sys.executable, "-m", "tether.cli.main"]
KEYS = 100
FILLER = "x" * 186  # {"n":NNNNNN,"p":"xxx..."} is 200 bytes
API_PROCESS = "tether.cli.run.api_process"


# --- the load generator (its own process) -------------------------------------------------------
def requests(op: str) -> list[bytes]:
    """The pre-encoded requests of ``op``, sent in turn."""
    if op == "publish":
        body = json.dumps({"n": 1, "p": FILLER}, separators=(",", ":")).encode()
        head = ("POST /v1.0/publish/pubsub/bench HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        return [head.encode() + body]
    return [f"GET /v1.0/state/statestore/k{k} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
            for k in range(KEYS)]


class Counter:
    def __init__(self) -> None:
        self.measuring = False
        self.running = True
        self.answers = 0
        self.errors = 0


class Connection(asyncio.Protocol):
    """One keep-alive connection: the next request goes out when the answer is complete."""

    def __init__(self, sends: list[bytes], counter: Counter, offset: int) -> None:
        self.sends = sends
        self.counter = counter
        self.next = offset
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.transport.write(self.sends[self.next % len(self.sends)])
        self.next += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            at = head.find(b"content-length:")
            length = 0
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15:stop if stop >= 0 else None])
            if len(self.buffer) < end + 4 + length:
                return
            status = int(head[9:12])
            self.buffer = self.buffer[end + 4 + length:]
            if self.counter.measuring:
                self.counter.answers += 1
                self.counter.errors += status not in (200, 204)
            if self.counter.running:
                self._send()
            else:
                assert self.transport is not None
                self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def generate(port: int, op: str, connections: int, warmup: float, seconds: float) -> None:
    """Run the load; print ``measuring`` when the measured window starts and a JSON line of
    results when it ends."""
    loop = asyncio.get_running_loop()
    counter = Counter()
    sends = requests(op)
    opened = [await loop.create_connection(lambda i=i: Connection(sends, counter, i * 7),
                                           "127.0.0.1", port) for i in range(connections)]
    await asyncio.sleep(warmup)
    print("measuring", flush=True)
    cpu, start = time.process_time(), time.perf_counter()
    counter.measuring = True
    await asyncio.sleep(seconds)
    counter.measuring = False
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"answers": counter.answers, "errors": counter.errors,
                      "elapsed": elapsed, "cpu": cpu}), flush=True)
    counter.running = False
    for _, protocol in opened:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(protocol.closed, 10)


# --- the sidecar -------------------------------------------------------------------------------
def component(name: str, kind: str, metadata: dict[str, str]) -> str:
    items = "".join(f"    - name: {k}\n      value: \"{v}\"\n" for k, v in metadata.items())
    return (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n"
            f"spec:\n  type: {kind}\n  version: v1\n  metadata:\n{items}")


def resources(backend: str, folder: Path, redis: str | None) -> Path:
    where = folder / f"resources-{backend}"
    where.mkdir()
    if backend == "embedded":
        pubsub = component("pubsub", "pubsub.tether.embedded", {"path": str(folder / "b.db")})
        state = component("statestore", "state.sqlite",
                          {"connectionString": str(folder / "state.db")})
    else:
        assert redis is not None
        pubsub = component("pubsub", "pubsub.redis", {"redisHost": redis})
        state = component("statestore", "state.redis", {"redisHost": redis})
    (where / "components.yaml").write_text(pubsub + "---\n" + state)
    return where


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sidecar:
    port: int
    pid: int

    def pids(self) -> list[int]:
        return [self.pid, *(p.pid for p in children(self.pid) if API_PROCESS in p.command)]

    def cpu(self) -> float:
        """CPU seconds all its processes have used so far."""
        return sum(cpu_seconds(pid) for pid in self.pids())


@contextlib.contextmanager
def sidecar(where: Path, processes: int, folder: Path) -> Iterator[Sidecar]:
    port = free_port()
    log_path = folder / f"sidecar-{where.name}-{processes}.log"
    command = [*TETHER, "run", "--app-id", "bench", "--http-port", str(port),
               "--resources-path", str(where), "--api-processes", str(processes)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        try:
            running = Sidecar(port, proc.pid)
            deadline = time.monotonic() + 60
            while len(running.pids()) < processes or not seeded(port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tether run did not come up:\n{log_path.read_text()}")
                time.sleep(0.2)
            yield running
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def seeded(port: int) -> bool:
    """Save the keys the gets read; False while the sidecar does not answer yet."""
    body = json.dumps([{"key": f"k{k}", "value": {"n": k, "p": FILLER}} for k in range(KEYS)])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/v1.0/state/statestore", body=body,
                     headers={"Content-Type": "application/json"})
        ok = conn.getresponse().status == 204
        conn.close()
    except OSError:
        return False
    return ok


@dataclass
class Row:
    backend: str
    op: str
    processes: int
    answers: int
    errors: int
    elapsed: float
    sidecar_cpu: float
    generator_cpu: float

    @property
    def rate(self) -> float:
        return self.answers / self.elapsed

    @property
    def sidecar_per(self) -> float:
        return self.sidecar_cpu / self.answers

    @property
    def ceiling(self) -> float:
        """req/s with min(N, cores) cores given to the sidecar alone."""
        return min(self.processes, os.cpu_count() or 1) / self.sidecar_per


def measure(running: Sidecar, backend: str, op: str, processes: int,
            args: argparse.Namespace) -> Row:
    gen = subprocess.Popen(
        [sys.executable, __file__, "--generate", str(running.port), op,
         str(args.connections), str(args.warmup), str(args.seconds)],
        stdout=subprocess.PIPE, text=True)
    assert gen.stdout is not None
    line = gen.stdout.readline()
    if line.strip() != "measuring":
        raise RuntimeError(f"the load generator said {line!r}")
    before = running.cpu()
    result = json.loads(gen.stdout.readline())
    after = running.cpu()
    gen.wait(30)
    return Row(backend, op, processes, result["answers"], result["errors"], result["elapsed"],
               after - before, result["cpu"])


def report(rows: list[Row]) -> None:
    for row in rows:
        print(f"  {row.backend:8} {row.op:7} N={row.processes}  {row.rate:7.0f} req/s  "
              f"sidecar {row.sidecar_per * 1e6:5.0f} us/req ({row.sidecar_cpu / row.elapsed:4.2f}"
              f" cores)  generator {row.generator_cpu / row.answers * 1e6:4.0f} us/req  "
              f"ceiling {row.ceiling:6.0f} req/s  errors {row.errors}")
    base = {(r.backend, r.op): r for r in rows if r.processes == 1}
    for row in rows:
        one = base.get((row.backend, row.op))
        if one is None or row.processes == 1:
            continue
        print(f"  {row.backend:8} {row.op:7} N={row.processes} vs 1: raw "
              f"{row.rate / one.rate:4.2f}x, ceiling {row.ceiling / one.ceiling:4.2f}x "
              f"(sidecar CPU/req {row.sidecar_per / one.sidecar_per:4.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=["embedded", "redis"],
                        choices=["embedded", "redis"])
    parser.add_argument("--ops", nargs="+", default=["publish", "get"],
                        choices=["publish", "get"])
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--redis", help="HOST:PORT of a Redis to use (default: start one)")
    parser.add_argument("--generate", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        port, op, connections, warmup, seconds = args.generate
        asyncio.run(generate(int(port), op, int(connections), float(warmup), float(seconds)))
        return
    print(f"api processes bench: {os.cpu_count()} cores, load {Path('/proc/loadavg').read_text()}"
          f"  {args.connections} connections, {args.warmup:g}s warmup, {args.seconds:g}s measured")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        folder = Path(tmp)
        redis = None
        if "redis" in args.backends:
            redis = args.redis or stack.enter_context(run_redis())
        for backend in args.backends:
            where = resources(backend, folder, redis)
            for processes in args.processes:
                with sidecar(where, processes, folder) as running:
                    for op in args.ops:
                        rows.append(measure(running, backend, op, processes, args))
                        print(f"  ... {backend} {op} N={processes}: {rows[-1].rate:.0f} req/s",
                              flush=True)
    report(rows)
    print(f"load at the end: {Path('/proc/loadavg').read_text().strip()}")


if __name__ == "__main__":
    main()
