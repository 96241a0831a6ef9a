"""State: save and get through the sidecar and the SDK, against the raw clients, in one run.

    .venv/bin/python bench/state.py [--stores redis postgresql sqlite] [--ops 5000]
                                    [--concurrent-ops 20000] [--concurrency 32] ...

For each store, a real ``tether run`` process (the sidecar alone, a resources dir with one
state component, ``statestore``) serves the state API. Each target then saves
(``i % keys`` for i in 0..ops) and gets the same keys, a 200-byte JSON value:

    raw      the database's own client on the same server: redis-py ``SET``/``GET``;
             psycopg 3 ``INSERT .. ON CONFLICT DO UPDATE``/``SELECT`` on a bench-only table
             (jsonb value, autocommit); stdlib sqlite3 upsert/select (WAL,
             synchronous=NORMAL, as the store), each on a table/key space of its own;
             sequential rows also show the asyncio flavour (redis.asyncio, psycopg
             AsyncConnectionPool), which the stores use
    store    Tether's state store opened in this process (no HTTP): what the data model
             costs over the raw client (ETags, TTL columns, an atomic script per write)
    http     the sidecar's HTTP API with pre-encoded requests (http.client / aiohttp)
    client   tether.Client.save_state / get_state (tether.AsyncClient when concurrent);
             get_state is a GET, as the http target's

"sequential" runs one request at a time (latency, and the cost of one op); "concurrent"
keeps ``--concurrency`` requests in flight (throughput; raw sqlite3 has no concurrent
client, its sequential figure is the baseline there). Each row has ops/s, p50/p99 and the
CPU per op of this process and of the sidecar process: on a shared machine CPU time is
much steadier than the wall clock. Ratios are printed against raw and against the store.

Redis: a redis-server started here on a free port (``--redis HOST:PORT`` to use another).
PostgreSQL: the machine's server (``--postgres DSN``, default database ``test`` on
127.0.0.1:5432), bench-only tables dropped at the end. SQLite: files in a temp dir.
Record the figures in docs/benchmarks.md ("State").
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
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _load import percentile, process_cpu  # noqa: E402

from tests.servers import POSTGRES_DEFAULT, free_port, run_redis  # noqa: E402
from tether.platform.components import Component  # noqa: E402
from tether.platform.state.registry import state_store_spec  # noqa: E402
from tether.platform.state.store import SetOperation, StateStore  # noqa: E402

STORE = "statestore"
APP_ID = "bench"
FILLER = "x" * 186  # {"n":NNNNNN,"p":"xxx..."} is 200 bytes
TETHER = [sys.executable, "-m", "tether.cli.main"]
TARGETS = ("raw", "store", "http", "client")
OPS = ("save", "get")


def value(n: int) -> dict[str, Any]:
    return {"n": n % 1_000_000, "p": FILLER}


def value_bytes(n: int) -> bytes:
    return json.dumps(value(n), separators=(",", ":")).encode()


# --- results ------------------------------------------------------------------------------------
@dataclass
class Result:
    latencies: list[float]
    elapsed: float
    cpu: float  # this process, seconds
    sidecar_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed

    def p(self, q: float) -> float:
        return percentile(self.latencies, q)

    def cpu_per(self) -> float:
        return self.cpu / len(self.latencies)

    def sidecar_per(self) -> float:
        return self.sidecar_cpu / len(self.latencies)


def run_sync(count: int, warmup: int, op: Callable[[int], object]) -> Result:
    for i in range(warmup):
        op(i)
    latencies = []
    cpu, start = time.process_time(), time.perf_counter()
    for i in range(warmup, warmup + count):
        began = time.perf_counter()
        op(i)
        latencies.append(time.perf_counter() - began)
    elapsed = time.perf_counter() - start
    return Result(sorted(latencies), elapsed, time.process_time() - cpu)


async def run_async(count: int, warmup: int, concurrency: int,
                    op: Callable[[int], Awaitable[object]]) -> Result:
    """Closed loop: ``concurrency`` workers, each sending its next op when one answers."""
    async def phase(first: int, total: int, latencies: list[float] | None) -> None:
        counter = iter(range(first, first + total))

        async def worker() -> None:
            for i in counter:
                began = time.perf_counter()
                await op(i)
                if latencies is not None:
                    latencies.append(time.perf_counter() - began)

        await asyncio.gather(*(worker() for _ in range(concurrency)))

    await phase(0, warmup, None)
    latencies: list[float] = []
    cpu, start = time.process_time(), time.perf_counter()
    await phase(warmup, count, latencies)
    elapsed = time.perf_counter() - start
    return Result(sorted(latencies), elapsed, time.process_time() - cpu)


# --- stores ---------------------------------------------------------------------------------------
@dataclass
class Setup:
    name: str
    #: the state component's metadata (the sidecar's and the in-process store's)
    metadata: dict[str, str]
    type: str
    #: what the raw baseline is, for the printout
    raw_label: str
    address: str = ""
    folder: Path = field(default_factory=Path)

    def component(self, name: str = STORE) -> Component:
        return Component(name=name, type=self.type, metadata=dict(self.metadata))

    def yaml(self) -> str:
        items = "".join(f"    - name: {k}\n      value: \"{v}\"\n"
                        for k, v in self.metadata.items())
        return ("apiVersion: dapr.io/v1alpha1\nkind: Component\n"
                f"metadata:\n  name: {STORE}\nspec:\n  type: {self.type}\n  version: v1\n"
                f"  metadata:\n{items}")


@contextlib.contextmanager
def open_setup(name: str, folder: Path, args: argparse.Namespace) -> Iterator[Setup]:
    tag = uuid.uuid4().hex[:8]
    if name == "redis":
        with contextlib.ExitStack() as stack:
            address = args.redis or stack.enter_context(run_redis())
            where = "--redis" if args.redis else "its own redis-server"
            yield Setup(name, {"redisHost": address}, "state.redis",
                        f"redis-py SET/GET ({where} {address})", address, folder)
    elif name == "postgresql":
        table = f"bench_state_{tag}"
        try:
            create_raw_table(args.postgres, f"bench_raw_{tag}")
            yield Setup(name, {"connectionString": args.postgres, "tableName": table,
                               "metadataTableName": f"{table}_meta"}, "state.postgresql",
                        f"psycopg upsert/SELECT (tables bench_raw_{tag} and {table}*, dropped "
                        "at the end)", args.postgres, folder)
        finally:
            drop_postgres(args.postgres, table, f"{table}_meta", f"{table}_outbox",
                          f"bench_raw_{tag}", f"{table}_inproc", f"{table}_inproc_meta",
                          f"{table}_inproc_outbox")
    elif name == "sqlite":
        yield Setup(name, {"connectionString": str(folder / "state.db")}, "state.sqlite",
                    "sqlite3 upsert/SELECT", str(folder / "raw.db"), folder)
    else:
        raise ValueError(name)


def create_raw_table(dsn: str, table: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (key text PRIMARY KEY, value jsonb)")


def drop_postgres(dsn: str, *tables: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


# --- the sidecar ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Running:
    base: str
    port: int
    pid: int

    def cpu(self) -> float:
        """CPU seconds (user + system) the sidecar process has used so far."""
        return process_cpu(self.pid)


@contextlib.contextmanager
def sidecar(setup: Setup, folder: Path) -> Iterator[Running]:
    """``tether run`` as a real process with one state component."""
    resources = folder / f"resources-{setup.name}"
    resources.mkdir()
    (resources / "state.yaml").write_text(setup.yaml())
    port = free_port()
    log_path = folder / f"sidecar-{setup.name}.log"
    command = [*TETHER, "run", "--app-id", APP_ID, "--http-port", str(port),
               "--resources-path", str(resources)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        try:
            wait_ready(port, process, log_path)
            yield Running(f"http://127.0.0.1:{port}", port, process.pid)
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(port: int, process: subprocess.Popen[bytes], log: Path,
               timeout: float = 60) -> None:
    """Until the state API answers (a GET of a missing key: 204)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tether run exited with {process.returncode}:\n"
                               f"{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", f"/v1.0/state/{STORE}/bench-ready")
                if conn.getresponse().status in (200, 204):
                    return
            finally:
                conn.close()
        time.sleep(0.1)
    raise TimeoutError(f"the sidecar on port {port} did not answer within {timeout}s")


# --- sequential targets (one op at a time) ------------------------------------------------------
SyncOps = dict[str, Callable[[int], object]]


def raw_sync(setup: Setup, keys: int) -> tuple[SyncOps, Callable[[], None]]:
    bodies = [value_bytes(k) for k in range(keys)]
    if setup.name == "redis":
        import redis

        host, port = setup.address.split(":")
        r = redis.Redis(host=host, port=int(port))
        names = [f"raw||k{k}" for k in range(keys)]

        def get(i: int) -> object:
            found = r.get(names[i % keys])
            assert found is not None
            return json.loads(found)

        return {"save": lambda i: r.set(names[i % keys], bodies[i % keys]), "get": get}, r.close
    if setup.name == "postgresql":
        import psycopg

        table = "bench_raw_" + setup.metadata["tableName"].removeprefix("bench_state_")
        conn = psycopg.connect(setup.address, autocommit=True)
        upsert = (f"INSERT INTO {table} (key, value) VALUES (%s, %s) "
                  "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
        select = f"SELECT value FROM {table} WHERE key = %s"
        texts = [b.decode() for b in bodies]

        def pg_get(i: int) -> object:
            row = conn.execute(select, (f"k{i % keys}",)).fetchone()
            assert row is not None
            return row[0]  # psycopg decodes jsonb

        return {"save": lambda i: conn.execute(upsert, (f"k{i % keys}", texts[i % keys])),
                "get": pg_get}, conn.close
    import sqlite3

    db = sqlite3.connect(setup.address, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT)")

    def lite_get(i: int) -> object:
        row = db.execute("SELECT value FROM state WHERE key = ?", (f"k{i % keys}",)).fetchone()
        assert row is not None
        return json.loads(row[0])

    texts = [b.decode() for b in bodies]
    upsert = ("INSERT INTO state (key, value) VALUES (?, ?) "
              "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
    return {"save": lambda i: db.execute(upsert, (f"k{i % keys}", texts[i % keys])),
            "get": lite_get}, db.close


def http_sync(running: Running, keys: int) -> tuple[SyncOps, Callable[[], None]]:
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=60)
    bodies = [json.dumps([{"key": f"k{k}", "value": value(k)}]).encode() for k in range(keys)]
    headers = {"Content-Type": "application/json"}

    def save(i: int) -> None:
        conn.request("POST", f"/v1.0/state/{STORE}", body=bodies[i % keys], headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 204:
            raise RuntimeError(f"save answered {response.status}")

    def get(i: int) -> object:
        conn.request("GET", f"/v1.0/state/{STORE}/k{i % keys}")
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"get answered {response.status}")
        return json.loads(body)

    return {"save": save, "get": get}, conn.close


def client_sync(running: Running, keys: int) -> tuple[SyncOps, Callable[[], None]]:
    import tether

    client = tether.Client(running.base)
    values = [value(k) for k in range(keys)]

    def get(i: int) -> object:
        item = client.get_state(STORE, f"k{i % keys}")
        assert item.found
        return item.json()

    return {"save": lambda i: client.save_state(STORE, f"k{i % keys}", values[i % keys]),
            "get": get}, client.close


# --- concurrent targets -----------------------------------------------------------------------
AsyncOps = dict[str, Callable[[int], Awaitable[object]]]


async def raw_async(setup: Setup, keys: int, concurrency: int
                    ) -> tuple[AsyncOps, Callable[[], Awaitable[None]]] | None:
    bodies = [value_bytes(k) for k in range(keys)]
    if setup.name == "redis":
        import redis.asyncio as aioredis

        host, port = setup.address.split(":")
        pool = aioredis.BlockingConnectionPool(host=host, port=int(port),
                                               max_connections=concurrency)
        r = aioredis.Redis(connection_pool=pool)
        names = [f"raw||k{k}" for k in range(keys)]

        async def get(i: int) -> object:
            found = await r.get(names[i % keys])
            assert found is not None
            return json.loads(found)

        async def save(i: int) -> object:
            return await r.set(names[i % keys], bodies[i % keys])

        async def close() -> None:
            await r.aclose()
            await pool.aclose()

        return {"save": save, "get": get}, close
    if setup.name == "postgresql":
        from psycopg_pool import AsyncConnectionPool

        from tether.platform.state.stores.postgresql import POOL_SIZE

        table = "bench_raw_" + setup.metadata["tableName"].removeprefix("bench_state_")
        # the store's own pool size, so both sides have as many connections
        pg = AsyncConnectionPool(setup.address, min_size=POOL_SIZE, max_size=POOL_SIZE,
                                 kwargs={"autocommit": True}, open=False)
        await pg.open(wait=True)
        upsert = (f"INSERT INTO {table} (key, value) VALUES (%s, %s) "
                  "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
        select = f"SELECT value FROM {table} WHERE key = %s"
        texts = [b.decode() for b in bodies]

        async def pg_save(i: int) -> object:
            async with pg.connection() as conn:
                return await conn.execute(upsert, (f"k{i % keys}", texts[i % keys]))

        async def pg_get(i: int) -> object:
            async with pg.connection() as conn:
                row = await (await conn.execute(select, (f"k{i % keys}",))).fetchone()
            assert row is not None
            return row[0]

        return {"save": pg_save, "get": pg_get}, pg.close
    return None  # sqlite3 has no concurrent client


async def store_ops(setup: Setup, keys: int) -> tuple[AsyncOps, StateStore]:
    """Tether's store in this process, on tables/keys of its own."""
    metadata = dict(setup.metadata)
    if setup.name == "postgresql":
        metadata["tableName"] = metadata["tableName"] + "_inproc"
        metadata["metadataTableName"] = metadata["tableName"] + "_meta"
    elif setup.name == "sqlite":
        metadata["connectionString"] = str(setup.folder / "inproc.db")
    component = Component(name="inproc", type=setup.type, metadata=metadata)
    store = await state_store_spec(component).opener()
    bodies = [value_bytes(k) for k in range(keys)]

    async def save(i: int) -> object:
        return await store.set(SetOperation(key=f"inproc||k{i % keys}", value=bodies[i % keys]))

    async def get(i: int) -> object:
        item = await store.get(f"inproc||k{i % keys}")
        assert item is not None
        return json.loads(item.value)

    return {"save": save, "get": get}, store


async def http_async(running: Running, keys: int, concurrency: int
                     ) -> tuple[AsyncOps, Callable[[], Awaitable[None]]]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))
    bodies = [json.dumps([{"key": f"k{k}", "value": value(k)}]).encode() for k in range(keys)]
    headers = {"Content-Type": "application/json"}
    base = f"{running.base}/v1.0/state/{STORE}"

    async def save(i: int) -> None:
        async with session.post(base, data=bodies[i % keys], headers=headers) as response:
            await response.read()
            if response.status != 204:
                raise RuntimeError(f"save answered {response.status}")

    async def get(i: int) -> object:
        async with session.get(f"{base}/k{i % keys}") as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"get answered {response.status}")
            return json.loads(body)

    return {"save": save, "get": get}, session.close


def client_async(running: Running, keys: int) -> tuple[AsyncOps, Callable[[], Awaitable[None]]]:
    import tether

    client = tether.AsyncClient(running.base)
    values = [value(k) for k in range(keys)]

    async def save(i: int) -> None:
        await client.save_state(STORE, f"k{i % keys}", values[i % keys])

    async def get(i: int) -> object:
        item = await client.get_state(STORE, f"k{i % keys}")
        assert item.found
        return item.json()

    return {"save": save, "get": get}, client.close


# --- one store --------------------------------------------------------------------------------
Table = dict[tuple[str, str], Result]  # (target, op) -> result


def measure_sequential(setup: Setup, running: Running, args: argparse.Namespace) -> Table:
    count, warmup = args.ops, max(1, args.ops // 10)
    keys = min(args.keys, count)
    table: Table = {}
    for target in args.targets:
        if target == "store":
            table.update(asyncio.run(store_sequential(setup, keys, count, warmup)))
            continue
        if target == "raw":
            # the asyncio flavour of the raw client too: the store is async, so this
            # separates the client library's own asyncio cost from Tether's
            table.update(asyncio.run(raw_async_sequential(setup, keys, count, warmup)))
        if target == "raw":
            ops, close = raw_sync(setup, keys)
        elif target == "http":
            ops, close = http_sync(running, keys)
        else:
            ops, close = client_sync(running, keys)
        try:
            for op in OPS:
                cpu = running.cpu()
                result = run_sync(count, warmup, ops[op])
                result.sidecar_cpu = running.cpu() - cpu if target in ("http", "client") else 0
                table[target, op] = result
        finally:
            close()
    return table


async def raw_async_sequential(setup: Setup, keys: int, count: int, warmup: int) -> Table:
    made = await raw_async(setup, keys, 1)
    if made is None:
        return {}
    ops, close = made
    try:
        return {("raw-async", op): await run_async(count, warmup, 1, ops[op]) for op in OPS}
    finally:
        await close()


async def store_sequential(setup: Setup, keys: int, count: int, warmup: int) -> Table:
    ops, store = await store_ops(setup, keys)
    try:
        return {("store", op): await run_async(count, warmup, 1, ops[op]) for op in OPS}
    finally:
        await store.close()


async def measure_concurrent(setup: Setup, running: Running, args: argparse.Namespace) -> Table:
    count, conc = args.concurrent_ops, args.concurrency
    warmup = max(conc, count // 10)
    keys = min(args.keys, count)
    table: Table = {}
    for target in args.targets:
        store: StateStore | None = None
        close: Callable[[], Awaitable[None]] | None = None
        if target == "raw":
            made = await raw_async(setup, keys, conc)
            if made is None:
                continue
            ops, close = made
        elif target == "store":
            ops, store = await store_ops(setup, keys)
        elif target == "http":
            ops, close = await http_async(running, keys, conc)
        else:
            ops, close = client_async(running, keys)
        try:
            for op in OPS:
                cpu = running.cpu()
                result = await run_async(count, warmup, conc, ops[op])
                result.sidecar_cpu = running.cpu() - cpu if target in ("http", "client") else 0
                table[target, op] = result
        finally:
            if store is not None:
                await store.close()
            if close is not None:
                await close()
    return table


LABELS = {"raw": "raw", "raw-async": "raw, asyncio client", "store": "store (in-process)",
          "http": "HTTP via sidecar", "client": "tether.Client"}
ROWS = ("raw", "raw-async", "store", "http", "client")


def report(setup: Setup, mode: str, table: Table, baseline: Table) -> None:
    for op in OPS:
        raw = baseline.get(("raw", op))
        store = table.get(("store", op))
        raw_async = table.get(("raw-async", op))
        for target in ROWS:
            r = table.get((target, op))
            if r is None:
                continue
            label = LABELS[target] if target != "client" or mode == "sequential" \
                else "tether.AsyncClient"
            line = (f"    {op:<4} {label:<20} {r.rate:>8,.0f} ops/s  p50 {r.p(0.5) * 1e3:6.2f} ms"
                    f"  p99 {r.p(0.99) * 1e3:6.2f} ms  CPU/op: here {r.cpu_per() * 1e6:5.0f} us")
            if target in ("http", "client"):
                line += f", sidecar {r.sidecar_per() * 1e6:4.0f} us"
            if target not in ("raw", "raw-async") and raw is not None:
                line += f"  ratio {r.rate / raw.rate:.0%} of raw"
                if target == "store" and raw_async is not None:
                    line += f", {r.rate / raw_async.rate:.0%} of raw asyncio"
                if target in ("http", "client") and store is not None:
                    line += f", {r.rate / store.rate:.0%} of store"
            print(line, flush=True)


async def bench_store(name: str, folder: Path, args: argparse.Namespace) -> None:
    with open_setup(name, folder, args) as setup, sidecar(setup, folder) as running:
        print(f"{name}: raw = {setup.raw_label}; sidecar = tether run process, pid "
              f"{running.pid}", flush=True)
        sequential = await asyncio.to_thread(measure_sequential, setup, running, args)
        print(f"  sequential (1 in flight, {args.ops:,} ops each):", flush=True)
        report(setup, "sequential", sequential, sequential)
        if args.concurrency > 1:
            concurrent = await measure_concurrent(setup, running, args)
            # raw sqlite3 has no concurrent client: its sequential figure is the baseline
            baseline = sequential if setup.name == "sqlite" else concurrent
            note = "; raw = the sequential sqlite3 figure" if setup.name == "sqlite" else ""
            print(f"  concurrent ({args.concurrency} in flight, {args.concurrent_ops:,} ops "
                  f"each{note}):", flush=True)
            report(setup, "concurrent", concurrent, baseline)


async def run(args: argparse.Namespace) -> None:
    print(f"state bench: stores {' '.join(args.stores)}, {os.cpu_count()} cores, load "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}, value 200 B JSON, "
          f"{args.keys} keys\n", flush=True)
    for name in args.stores:
        with tempfile.TemporaryDirectory(prefix="tether-bench-state-") as tmp:
            await bench_store(name, Path(tmp), args)
        print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", nargs="+", default=["redis", "postgresql", "sqlite"],
                        choices=["redis", "postgresql", "sqlite"])
    parser.add_argument("--ops", type=int, default=2000, help="sequential ops per row")
    parser.add_argument("--concurrent-ops", type=int, default=5000,
                        help="concurrent ops per row")
    parser.add_argument("--concurrency", type=int, default=32,
                        help="requests in flight when concurrent (1: skip that part)")
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=TARGETS)
    parser.add_argument("--keys", type=int, default=1000, help="distinct keys")
    parser.add_argument("--redis", help="HOST:PORT of a Redis to use (default: start one)")
    parser.add_argument("--postgres", default=os.environ.get("TETHER_TEST_POSTGRES",
                                                             POSTGRES_DEFAULT),
                        help="libpq DSN (default: database test on 127.0.0.1:5432)")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl+C, so the tether run and redis-server processes stop
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
