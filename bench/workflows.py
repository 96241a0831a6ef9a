"""Durable workflows on the broker: throughput and a large fan-out, against Dapr and Celery.

    .venv/bin/python bench/workflows.py [--backends embedded redis kafka]
        [--parts chain fan big celery] [--instances 200] [--width 5] [--fan-out 10000]
        [--workers 1] [--tether-worker] [--repeat 1] [--async-activities]

The workers are ``WorkflowRuntime`` objects started in their own processes (``--workers``
of them), each the way ``tether worker`` runs one: ``async with runtime`` in one process,
its orchestration worker, activity worker, timer scheduler and outbox sender on one event
loop. ``--tether-worker`` runs them with the CLI itself instead:
``tether worker workflows_app:wfr --replicas N`` (bench/workflows_app.py). This process is
the client (``AsyncWorkflowClient``, Dapr's client shape): it starts the instances all at
once (``--start-concurrency`` caps that) and polls their state until each has finished, and
checks every output.

(chain) workflows/s for N concurrent instances of a chain of 5 activities (each adds 1);
(fan)   workflows/s for N concurrent instances of a fan-out of 5 (when_all, then the sum);
        both printed next to Dapr's published figures (57 and 98 workflows/s with one
        sidecar on 1 vCPU; the target is twice those);
(big)   the time for one instance to fan out --fan-out activities and fan in (the sum is
        checked);
(celery) the same fan-out/fan-in as a Celery chord (a group of add_one tasks, then a sum)
        on the same redis-server (broker and result backend), with a real ``celery worker``
        process (``--pool=solo`` for one worker, prefork with --workers processes
        otherwise); printed as the ratio Tether/Celery. Redis backend only.

Every figure also has the CPU seconds the workers, the server (redis-server or tansu; the
embedded broker and SQLite run inside the workers) and the client used, and the 1-minute
load average when it was taken: the machine may be shared, and CPU time per workflow stays
meaningful when wall-clock figures do not.

Backends: embedded (SQLite broker file + SQLite state), Redis (a redis-server started here,
its broker + state.redis on it), Kafka (a tansu broker started here + SQLite state).
Record the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import statistics
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

from tests.servers import run_redis, run_tansu  # noqa: E402
from tether.platform.components import Component  # noqa: E402
from tether.platform.workflows.durable import AsyncWorkflowClient  # noqa: E402
from tether.platform.workflows.durable.config import RuntimeConfig  # noqa: E402
from tether.workers.workflows import WorkflowRuntime  # noqa: E402
from tether.workflow import (  # noqa: E402
    DaprWorkflowContext,
    WorkflowActivityContext,
    WorkflowStatus,
    when_all,
)

DAPR_CHAIN, DAPR_FAN = 57.0, 98.0
CHAIN_LENGTH = 5
# tansu completes a group join in about session_timeout / 2: keep it short (startup only)
KAFKA_OPTIONS = "session_timeout_ms=6000&heartbeat_interval_ms=1000"
WAIT = 600.0
POLL = 0.005


# --- the workflows ------------------------------------------------------------------------------
def register(wfr: WorkflowRuntime, async_activities: bool = False) -> None:
    if async_activities:
        @wfr.activity(name="add_one")
        async def add_one_async(ctx: WorkflowActivityContext, x: int) -> int:
            return x + 1
        add_one: Any = add_one_async
    else:
        @wfr.activity(name="add_one")
        def add_one_sync(ctx: WorkflowActivityContext, x: int) -> int:
            return x + 1
        add_one = add_one_sync

    @wfr.workflow(name="chain")
    def chain(ctx: DaprWorkflowContext, x: int) -> Any:
        for _ in range(CHAIN_LENGTH):
            x = yield ctx.call_activity(add_one, input=x)
        return x

    @wfr.workflow(name="fan")
    def fan(ctx: DaprWorkflowContext, spec: dict[str, int]) -> Any:
        values = yield when_all([ctx.call_activity(add_one, input=spec["x"] + i)
                                 for i in range(spec["width"])])
        return sum(values)


def fan_expected(x: int, width: int) -> int:
    return sum(x + i + 1 for i in range(width))


# --- a worker process ---------------------------------------------------------------------------
@dataclass
class Spec:
    broker_url: str
    state: dict[str, Any]
    namespace: str
    async_activities: bool = False

    def component(self) -> Component:
        return Component(name=self.state["name"], type=self.state["type"],
                         metadata=self.state["metadata"])

    def config(self) -> RuntimeConfig:
        return RuntimeConfig(broker_url=self.broker_url, state_store=self.component(),
                             namespace=self.namespace)


async def serve_worker(spec: Spec) -> None:
    """What ``tether worker`` does with a WorkflowRuntime: run it until SIGTERM."""
    import logging

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    wfr = WorkflowRuntime(spec.config())
    register(wfr, spec.async_activities)
    async with wfr:
        print("ready", flush=True)
        await stop.wait()


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its children still running, from /proc."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for candidate in [pid, *children_of(pid)]:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{candidate}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def server_pid(address: str | None) -> int | None:
    """The redis-server or tansu process listening on ``address`` (started by tests.servers)."""
    if address is None:
        return None
    port = address.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            program = Path(argv[0].decode()).name.split(" ", 1)[0]
            if program not in ("redis-server", "tansu"):
                continue
            text = b" ".join(argv).decode()
            if f":{port}" in text or f"--port {port}" in text:
                return int(entry.name)
    return None


@dataclass
class Workers:
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cpu(self) -> float:
        return sum(proc_cpu(p.pid) for p in self.processes)


@contextlib.contextmanager
def run_workers(spec: Spec, count: int, folder: Path, tether_worker: bool = False
                ) -> Iterator[Workers]:
    workers = Workers()
    try:
        if tether_worker:
            # the CLI's supervisor with --replicas children (their CPU counts as its own);
            # readiness: the client waits for the names they register
            env = {**os.environ, "TETHER_BENCH_SPEC": json.dumps(spec.__dict__),
                   "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)])}
            log = (folder / "worker-0.log").open("wb")
            workers.processes.append(subprocess.Popen(
                [sys.executable, "-m", "tether.cli.main", "worker", "workflows_app:wfr",
                 "--replicas", str(count)], env=env, cwd=folder, stdout=log, stderr=log))
            count = 0
        for n in range(count):
            log = (folder / f"worker-{n}.log").open("wb")
            process = subprocess.Popen(
                [sys.executable, __file__, "--role", "worker", "--spec",
                 json.dumps(spec.__dict__)],
                stdout=subprocess.PIPE, stderr=log, cwd=folder)
            workers.processes.append(process)
        for process in workers.processes[len(workers.processes) - count:]:
            assert process.stdout is not None
            line = process.stdout.readline()
            if line.strip() != b"ready":
                raise RuntimeError(f"a worker did not start; see {folder}/worker-*.log")
        yield workers
    finally:
        for process in workers.processes:
            process.terminate()
        for process in workers.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        report_worker_logs(folder)


def report_worker_logs(folder: Path) -> None:
    """Warnings and errors the workers logged (retried steps slow a figure down)."""
    for log in sorted(folder.glob("worker-*.log")):
        lines = [line for line in log.read_text(errors="replace").splitlines()
                 if any(word in line for word in ("WARNING", "ERROR", "Traceback", "failed"))]
        if lines:
            print(f"{log.name}: {len(lines)} warnings/errors, the first ones:", file=sys.stderr)
            for line in lines[:5]:
                print(f"  {line[:300]}", file=sys.stderr)


# --- backends -------------------------------------------------------------------------------
@dataclass
class Backend:
    name: str
    spec: Spec
    #: host:port of the server (None: embedded)
    address: str | None = None


def sqlite_state(folder: Path, tag: str) -> dict[str, Any]:
    return {"name": f"wfstate-{tag}", "type": "state.sqlite",
            "metadata": {"connectionString": str(folder / "state.db")}}


@contextlib.contextmanager
def open_backend(name: str, folder: Path, async_activities: bool) -> Iterator[Backend]:
    tag = uuid.uuid4().hex[:8]
    namespace = f"bench-{tag}"
    if name == "embedded":
        yield Backend(name, Spec(f"embedded://{folder}/broker.db", sqlite_state(folder, tag),
                                 namespace, async_activities))
    elif name == "redis":
        with run_redis() as address:
            state = {"name": f"wfstate-{tag}", "type": "state.redis",
                     "metadata": {"redisHost": address}}
            yield Backend(name, Spec(f"redis://{address}/0?namespace={namespace}", state,
                                     namespace, async_activities), address)
    elif name == "kafka":
        with run_tansu() as address:
            yield Backend(name, Spec(f"kafka://{address}?{KAFKA_OPTIONS}",
                                     sqlite_state(folder, tag), namespace, async_activities),
                          address)
    else:
        raise ValueError(name)


# --- measuring --------------------------------------------------------------------------------
@dataclass
class Figure:
    wall: float
    worker_cpu: float
    server_cpu: float
    client_cpu: float
    load: float

    def cpu_text(self, per: int, unit: str) -> str:
        server = f", server {self.server_cpu:.2f} s" if self.server_cpu else ""
        return (f"CPU: workers {self.worker_cpu:.2f} s ({self.worker_cpu / per * 1000:.2f} ms/"
                f"{unit}){server}, client {self.client_cpu:.2f} s; load {self.load:.1f}")


async def measure(run: Callable[[], Awaitable[None]], worker_cpu: Callable[[], float],
                  server: int | None) -> Figure:
    load = os.getloadavg()[0]
    w0, s0, c0 = worker_cpu(), proc_cpu(server) if server else 0.0, time.process_time()
    started = time.perf_counter()
    await run()
    wall = time.perf_counter() - started
    return Figure(wall, worker_cpu() - w0, (proc_cpu(server) - s0) if server else 0.0,
                  time.process_time() - c0, load)


async def wait_all(client: AsyncWorkflowClient, ids: list[str], deadline: float
                   ) -> dict[str, Any]:
    """Each instance's output once it has finished (polled in order, one read at a time)."""
    loop = asyncio.get_running_loop()
    outputs: dict[str, Any] = {}
    for iid in ids:
        while True:
            state = await client.get_workflow_state(iid)
            if state is not None and state.runtime_status.is_terminal:
                if state.runtime_status != WorkflowStatus.COMPLETED:
                    raise AssertionError(f"{iid}: {state.runtime_status.value} "
                                         f"{state.failure_details}")
                outputs[iid] = state.output()
                break
            if loop.time() > deadline:
                raise TimeoutError(f"{iid} did not finish")
            await asyncio.sleep(POLL)
    return outputs


#: --start-concurrency: at most this many schedule_new_workflow calls at once (0: no limit)
START_CONCURRENCY = 0


async def run_instances(client: AsyncWorkflowClient, name: str,
                        inputs: dict[str, Any]) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + WAIT
    slots = asyncio.Semaphore(START_CONCURRENCY or len(inputs))

    async def start(iid: str, value: Any) -> str:
        async with slots:
            return await client.schedule_new_workflow(name, input=value, instance_id=iid)

    ids = await asyncio.gather(*(start(iid, value) for iid, value in inputs.items()))
    return await wait_all(client, list(ids), deadline)


def new_ids(stem: str, count: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{stem}-{run}-{i}" for i in range(count)]


@dataclass
class Context:
    backend: Backend
    client: AsyncWorkflowClient
    workers: Workers
    server: int | None
    args: argparse.Namespace

    @property
    def where(self) -> str:
        how = ", tether worker" if self.args.tether_worker else ""
        return f"{self.backend.name} ({self.args.workers} worker process"\
               f"{'es' if self.args.workers > 1 else ''}{how})"

    async def measure(self, run: Callable[[], Awaitable[None]]) -> Figure:
        return await measure(run, self.workers.cpu, self.server)


async def part_chain(ctx: Context) -> list[float]:
    n = ctx.args.instances
    rates = []
    for _ in range(ctx.args.repeat):
        inputs: dict[str, Any] = {iid: i for i, iid in enumerate(new_ids("chain", n))}

        async def run(inputs: dict[str, Any] = inputs) -> None:
            outputs = await run_instances(ctx.client, "chain", inputs)
            assert all(outputs[iid] == x + CHAIN_LENGTH for iid, x in inputs.items()), outputs

        fig = await ctx.measure(run)
        rate = n / fig.wall
        rates.append(rate)
        print(f"(chain) {ctx.where}: chain of {CHAIN_LENGTH}, {n} concurrent instances: "
              f"{rate:.0f} workflows/s in {fig.wall:.2f} s ({rate / DAPR_CHAIN:.2f}x Dapr's "
              f"{DAPR_CHAIN:.0f}/s, target 2x); {fig.cpu_text(n, 'workflow')}", flush=True)
    return rates


async def part_fan(ctx: Context) -> list[float]:
    n, width = ctx.args.instances, ctx.args.width
    rates = []
    for _ in range(ctx.args.repeat):
        inputs: dict[str, Any] = {iid: {"x": i, "width": width}
                                  for i, iid in enumerate(new_ids("fan", n))}

        async def run(inputs: dict[str, Any] = inputs) -> None:
            outputs = await run_instances(ctx.client, "fan", inputs)
            assert all(outputs[iid] == fan_expected(spec["x"], width)
                       for iid, spec in inputs.items()), outputs

        fig = await ctx.measure(run)
        rate = n / fig.wall
        rates.append(rate)
        print(f"(fan) {ctx.where}: fan-out of {width}, {n} concurrent instances: "
              f"{rate:.0f} workflows/s in {fig.wall:.2f} s ({rate / DAPR_FAN:.2f}x Dapr's "
              f"{DAPR_FAN:.0f}/s, target 2x); {fig.cpu_text(n, 'workflow')}", flush=True)
    return rates


async def part_big(ctx: Context) -> list[float]:
    width = ctx.args.fan_out
    walls = []
    for _ in range(ctx.args.repeat):
        iid = new_ids("big", 1)[0]

        async def run(iid: str = iid) -> None:
            outputs = await run_instances(ctx.client, "fan", {iid: {"x": 0, "width": width}})
            assert outputs[iid] == fan_expected(0, width), outputs

        fig = await ctx.measure(run)
        walls.append(fig.wall)
        print(f"(big) {ctx.where}: one instance, fan-out/fan-in of {width} activities: "
              f"{fig.wall:.2f} s ({width / fig.wall:.0f} activities/s); "
              f"{fig.cpu_text(width, 'activity')}", flush=True)
    return walls


# --- Celery --------------------------------------------------------------------------------------
@contextlib.contextmanager
def celery_worker(address: str, processes: int, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "TETHER_BENCH_CELERY_REDIS": f"redis://{address}/1",
           "PYTHONPATH": str(ROOT / "bench")}
    pool = ["--pool=solo"] if processes == 1 else ["--pool=prefork",
                                                   f"--concurrency={processes}"]
    log = (folder / "celery.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workflows_celery", "worker", *pool,
         "--loglevel=WARNING", f"--hostname=bench-{uuid.uuid4().hex[:6]}@%h"],
        env=env, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def celery_chord(width: int, sent: list[float], timeout: float = WAIT) -> int:
    """Apply the chord, then wait for its result (``sent`` gets the seconds applying took).

    ``follow_parents=False``: by default ``get`` re-checks every header task's result each
    time a result message wakes it (the client subscribes to all of them), quadratic work
    that makes a 10,000-task chord take minutes of client CPU; a chord's body fails anyway
    if a header task failed."""
    import workflows_celery as tasks
    from celery import chord
    started = time.perf_counter()
    result = chord(tasks.add_one.s(i) for i in range(width))(tasks.total.s())
    sent.append(time.perf_counter() - started)
    value: int = result.get(timeout=timeout, follow_parents=False)
    return value


async def part_celery(ctx: Context, tether_walls: list[float]) -> None:
    if ctx.backend.address is None or ctx.backend.name != "redis":
        return
    width = ctx.args.fan_out
    folder = Path(ctx.args.folder)
    os.environ["TETHER_BENCH_CELERY_REDIS"] = f"redis://{ctx.backend.address}/1"
    sys.path.insert(0, str(ROOT / "bench"))
    import workflows_celery as tasks

    with celery_worker(ctx.backend.address, ctx.args.workers, folder) as worker:
        deadline = time.monotonic() + 120
        while not tasks.app.control.ping(timeout=0.5):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the celery worker did not start; see {folder}/celery.log")
        # warm-up: connections, the chord machinery
        assert await asyncio.to_thread(celery_chord, 10, []) == fan_expected(0, 10)
        pool = "solo" if ctx.args.workers == 1 else f"prefork --concurrency={ctx.args.workers}"
        walls = []
        for _ in range(ctx.args.repeat):
            sent: list[float] = []

            async def run(sent: list[float] = sent) -> None:
                value = await asyncio.to_thread(celery_chord, width, sent)
                assert value == fan_expected(0, width), value

            fig = await measure(run, lambda: proc_cpu(worker.pid), ctx.server)
            walls.append(fig.wall)
            print(f"(celery) redis: Celery chord of {width} tasks (celery worker --pool={pool}, "
                  f"redis broker + result backend): {fig.wall:.2f} s "
                  f"({width / fig.wall:.0f} tasks/s; applying the chord took {sent[0]:.2f} s); "
                  f"{fig.cpu_text(width, 'task')}".replace("workers", "celery worker"),
                  flush=True)
        # results left in reference cycles unsubscribe in __del__: let them do it while the
        # server still runs, not at exit
        gc.collect()
        tether, celery = statistics.median(tether_walls), statistics.median(walls)
        print(f"(celery) redis: Tether/Celery: {celery / tether:.2f}x the throughput "
              f"(fan-out/fan-in of {width}: Tether {tether:.2f} s, Celery {celery:.2f} s, "
              f"medians of {len(tether_walls)} and {len(walls)} runs)", flush=True)


# --- main ---------------------------------------------------------------------------------------
PARTS = ("chain", "fan", "big", "celery")


async def warm_up(client: AsyncWorkflowClient) -> None:
    """Group joins, connections and first-use costs, outside the clock."""
    inputs: dict[str, Any] = {iid: 0 for iid in new_ids("warm-chain", 4)}
    await run_instances(client, "chain", inputs)
    fans: dict[str, Any] = {iid: {"x": 0, "width": 5} for iid in new_ids("warm-fan", 4)}
    await run_instances(client, "fan", fans)


async def registered(client: AsyncWorkflowClient, workers: Workers) -> None:
    """Wait until a worker has registered the bench's workflows (tether worker starts in
    the background)."""
    deadline = time.monotonic() + 120
    while not await client.instances.is_registered("workflow", "fan"):
        if time.monotonic() > deadline or any(p.poll() is not None for p in workers.processes):
            raise RuntimeError("the workers did not start (see the worker logs)")
        await asyncio.sleep(0.1)


async def run_backend(name: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tether-bench-wf-") as tmp, \
            open_backend(name, Path(tmp), args.async_activities) as backend, \
            run_workers(backend.spec, args.workers, Path(tmp), args.tether_worker) as workers:
        args.folder = tmp
        async with AsyncWorkflowClient(backend.spec.config()) as client:
            await registered(client, workers)
            await warm_up(client)
            ctx = Context(backend, client, workers, server_pid(backend.address), args)
            if "chain" in args.parts:
                await part_chain(ctx)
            if "fan" in args.parts:
                await part_fan(ctx)
            walls: list[float] = []
            if "big" in args.parts or "celery" in args.parts:
                walls = await part_big(ctx)
            if "celery" in args.parts and name == "redis":
                await part_celery(ctx, walls)


async def run(args: argparse.Namespace) -> None:
    kind = "async" if args.async_activities else "sync (run in a thread, as Dapr's examples)"
    print(f"workflows bench: backends {' '.join(args.backends)}, parts {' '.join(args.parts)}, "
          f"{args.workers} worker process(es), {kind} activities, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}\n", flush=True)
    for name in args.backends:
        await run_backend(name, args)
        print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default=["embedded", "redis", "kafka"],
                        choices=["embedded", "redis", "kafka"])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    parser.add_argument("--instances", type=int, default=200,
                        help="(chain, fan) concurrent instances")
    parser.add_argument("--width", type=int, default=5, help="(fan) activities per instance")
    parser.add_argument("--fan-out", type=int, default=10_000, help="(big, celery) activities")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each figure")
    parser.add_argument("--start-concurrency", type=int, default=0,
                        help="starts in flight at once (default 0: all at once)")
    parser.add_argument("--tether-worker", action="store_true",
                        help="run the workers as `tether worker workflows_app:wfr --replicas "
                             "N` (default: one `async with WorkflowRuntime` process each)")
    parser.add_argument("--async-activities", action="store_true",
                        help="async def activities (default: plain def, run in a thread)")
    parser.add_argument("--role", choices=["worker"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "worker":
        asyncio.run(serve_worker(Spec(**json.loads(args.spec))))
        return
    global START_CONCURRENCY
    START_CONCURRENCY = args.start_concurrency
    # SIGTERM unwinds like Ctrl+C, so the worker and server processes are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
