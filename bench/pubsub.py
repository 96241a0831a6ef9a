"""Pub/sub end to end: the sidecar, the SDK and HTTP delivery, each against its baseline in one run.

    .venv/bin/python bench/pubsub.py [--parts a b c d] [--backends embedded redis kafka]
                                     [--rate 1000] [--seconds 10] ...

(a) HTTP publish latency added by the sidecar: a load generator in its own process sends
    ``POST /v1.0/publish/pubsub/TOPIC`` at a fixed rate (open loop: each request starts at its
    scheduled time whether or not the earlier ones have answered) to a real ``tether run``
    process (the sidecar alone, no app command). The baseline is the same load generator
    calling ``broker.publish`` directly on the same broker with the same pacing. The added
    p50/p99 are printed next to Dapr's published figures (+0.6 ms p50, +1.9 ms p99).
(b) Bulk HTTP publish: events/s through ``POST /v1.0/publish/bulk`` in batches of 100 and
    1000 entries (one request at a time) against ``broker.publish_batch`` with the same
    batches, both from a separate load-generator process.
(c) In-process SDK: ``tether.App.publish`` to an ``@app.subscribe`` handler, events/s end to
    end, against the raw client's produce-to-consume on the same server (aiokafka, redis-py
    XADD/XREADGROUP) and against Tether's broker layer (publish + subscribe + ack).
(d) HTTP delivery: ``tether run`` with a subscription delivers to a real aiohttp app in its
    own process; events/s from the first delivery to the last, against the app's own ceiling
    (the same app driven directly by an aiohttp client, own process, with the same events in
    flight: 100, the delivery worker's default). One by one and bulk subscribe (batches of
    100), each with keyless events and with 64 partition keys.

Besides wall-clock figures, (a), (b) and (d) print CPU time per request or event (from
/proc for the sidecar, process_time for the load generator): on a busy shared machine that
stays meaningful when latencies do not.

Kafka runs on a tansu broker and Redis on a redis-server, both started here on free ports;
the embedded broker is a fresh SQLite file. Record the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _load import paced, percentile, process_cpu  # noqa: E402

from tests.servers import free_port, run_redis, run_tansu  # noqa: E402
from tether.brokers import Broker, open_broker  # noqa: E402
from tether.platform.events import CloudEvent, format_time, utc_now  # noqa: E402
from tether.platform.events.json_format import event_object, to_json  # noqa: E402
from tether.workers.delivery import DEFAULT_MAX_CONCURRENCY  # noqa: E402

PARTITIONS = 4
KEYS = 64
DAPR_P50_MS, DAPR_P99_MS = 0.6, 1.9
PUBSUB = "pubsub"
FILLER = "x" * 186  # {"n":NNNNNN,"p":"xxx..."} is 200 bytes
TETHER = [sys.executable, "-m", "tether.cli.main"]


def payload(n: int) -> dict[str, Any]:
    return {"n": n % 1_000_000, "p": FILLER}


def sidecar_event(topic: str, n: int, source: str = "bench") -> CloudEvent:
    """The CloudEvent the sidecar makes of one JSON publish, built the same way by hand."""
    return CloudEvent(
        type="com.dapr.event.sent", source=source, data=payload(n),
        datacontenttype="application/json", time=format_time(utc_now()),
        extensions={"topic": topic, "pubsubname": PUBSUB},
    )


# --- backends ---------------------------------------------------------------------------------
@dataclass
class Backend:
    name: str
    #: the broker URL Tether opens (the direct baseline uses the same)
    url: str
    #: the Dapr component YAML the sidecar loads
    component: str
    #: host:port of the server, for the raw clients (None: embedded, no raw client)
    address: str | None = None


def component_yaml(kind: str, metadata: dict[str, str]) -> str:
    items = "".join(f"    - name: {k}\n      value: \"{v}\"\n" for k, v in metadata.items())
    return (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\n"
        f"metadata:\n  name: {PUBSUB}\nspec:\n  type: {kind}\n  version: v1\n"
        f"  metadata:\n{items}"
    )


@contextlib.contextmanager
def open_backend(name: str, folder: Path) -> Iterator[Backend]:
    if name == "embedded":
        path = folder / "broker.db"
        yield Backend(name, f"embedded://{path}",
                      component_yaml("pubsub.tether.embedded", {"path": str(path)}))
    elif name == "redis":
        with run_redis() as address:
            yield Backend(name, f"redis://{address}/0",
                          component_yaml("pubsub.redis", {"redisHost": address}), address)
    elif name == "kafka":
        with run_tansu() as address:
            yield Backend(name, f"kafka://{address}",
                          component_yaml("pubsub.kafka", {"brokers": address,
                                                          "authType": "none"}), address)
    else:
        raise ValueError(name)


async def create_topics(backend: Backend, *topics: str) -> None:
    broker = open_broker(backend.url)
    async with broker:
        for topic in topics:
            await broker.create_topic(topic, PARTITIONS)


def new_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --- processes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Running:
    base: str
    pid: int

    def cpu(self) -> float:
        """CPU seconds (user + system) the sidecar process has used so far: a cost per
        request that a busy shared machine blurs much less than wall-clock figures."""
        return process_cpu(self.pid)


@contextlib.contextmanager
def sidecar(backend: Backend, folder: Path, *, app_id: str = "bench",
            subscriptions: str = "", app_command: Sequence[str] = (),
            app_port: int | None = None, tether: Sequence[str] = TETHER,
            config: Path | None = None) -> Iterator[Running]:
    """``tether run`` as a real process (started by the ``tether`` command); yields the base
    URL of its HTTP API and its pid."""
    resources = folder / f"resources-{uuid.uuid4().hex[:6]}"
    resources.mkdir()
    (resources / "pubsub.yaml").write_text(backend.component)
    if subscriptions:
        (resources / "subscriptions.yaml").write_text(subscriptions)
    port = free_port()
    command = [*tether, "run", "--app-id", app_id, "--http-port", str(port),
               "--resources-path", str(resources)]
    if app_port is not None:
        command += ["--app-port", str(app_port)]
    if config is not None:
        command += ["--config", str(config)]
    if app_command:
        command += ["--", *app_command]
    log = (folder / f"sidecar-{port}.log").open("wb")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/v1.0/healthz", process, folder / f"sidecar-{port}.log")
        yield Running(base, process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"tether run exited with {process.returncode}:\n"
                               f"{log.read_text()[-2000:]}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status < 300:
                    return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


async def run_role(spec: dict[str, Any]) -> dict[str, Any]:
    """Run ``spec`` in a separate load-generator process; its result is one JSON line."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "loadgen", "--spec", json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        out, _ = await process.communicate()
    finally:
        if process.returncode is None:  # interrupted: the load generator goes too
            process.kill()
            await process.wait()
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed ({process.returncode}) on {spec['kind']}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


# --- the load generator (its own process) ---------------------------------------------------
async def loadgen_latency(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    topic, count, warmup = spec["topic"], spec["count"], spec["warmup"]
    total = count + warmup
    if spec["target"] == "http":
        body = json.dumps(payload(1), separators=(",", ":")).encode()
        url = f"{spec['sidecar']}/v1.0/publish/{PUBSUB}/{topic}"
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:

            async def send(i: int) -> None:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 204:
                        raise RuntimeError(f"publish answered {response.status}")

            cpu = time.process_time()
            latencies, lags, elapsed = await paced(total, spec["rate"], send)
            cpu = time.process_time() - cpu
    else:
        events = [sidecar_event(topic, i) for i in range(total)]
        broker: Broker = open_broker(spec["broker"])
        async with broker:

            async def send(i: int) -> None:
                await broker.publish(topic, events[i])

            cpu = time.process_time()
            latencies, lags, elapsed = await paced(total, spec["rate"], send)
            cpu = time.process_time() - cpu
    measured = sorted(latencies[warmup:])
    lag = sorted(lags[warmup:])
    return {
        "p50": percentile(measured, 0.50), "p90": percentile(measured, 0.90),
        "p99": percentile(measured, 0.99), "max": measured[-1],
        "mean": statistics.fmean(measured), "rate": total / elapsed,
        "lag_p99": percentile(lag, 0.99), "count": count, "cpu_per": cpu / total,
    }


async def loadgen_bulk(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    topic, count, batch = spec["topic"], spec["count"], spec["batch"]
    rounds = max(1, count // batch)
    if spec["target"] == "http":
        url = f"{spec['sidecar']}/v1.0/publish/bulk/{PUBSUB}/{topic}"
        bodies = [
            json.dumps([{"entryId": str(j), "event": payload(r * batch + j),
                         "contentType": "application/json"} for j in range(batch)]).encode()
            for r in range(rounds + 1)
        ]
        headers = {"Content-Type": "application/json"}
        async with aiohttp.ClientSession() as session:

            async def send(r: int) -> None:
                async with session.post(url, data=bodies[r], headers=headers) as response:
                    reply = await response.read()
                    if response.status != 204:
                        raise RuntimeError(f"bulk publish answered {response.status}: {reply!r}")

            await send(rounds)  # warm-up: connection, broker, topic metadata
            started, cpu = time.perf_counter(), time.process_time()
            for r in range(rounds):
                await send(r)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    else:
        batches = [[sidecar_event(topic, r * batch + j) for j in range(batch)]
                   for r in range(rounds + 1)]
        broker: Broker = open_broker(spec["broker"])
        async with broker:
            await broker.publish_batch(topic, batches[rounds])
            started, cpu = time.perf_counter(), time.process_time()
            for r in range(rounds):
                await broker.publish_batch(topic, batches[r])
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"rate": rounds * batch / elapsed, "events": rounds * batch,
            "cpu_per": cpu / (rounds * batch)}


async def loadgen_app_ceiling(spec: dict[str, Any]) -> dict[str, Any]:
    """The app's own ceiling: POST the bodies a delivery worker sends, at its concurrency."""
    import aiohttp

    count, concurrency, bulk = spec["count"], spec["concurrency"], spec["bulk"]
    topic = "ceiling"
    url = f"http://127.0.0.1:{spec['app_port']}/{'bulk' if bulk else 'events'}"
    if bulk:
        requests = max(1, count // bulk)
        bodies = [json.dumps({
            "id": str(uuid.uuid4()), "type": "com.dapr.event.sent.bulk", "topic": topic,
            "pubsubname": PUBSUB, "metadata": {},
            "entries": [{"entryId": str(uuid.uuid4()),
                         "event": event_object(sidecar_event(topic, r * bulk + j)),
                         "contentType": "application/cloudevents+json", "metadata": {}}
                        for j in range(bulk)],
        }).encode() for r in range(requests)]
        content_type, events = "application/cloudevents-batch+json", requests * bulk
    else:
        bodies = [to_json(sidecar_event(topic, i)) for i in range(count)]
        content_type, events = "application/cloudevents+json", count
    headers = {"Content-Type": content_type}
    queue = iter(range(len(bodies)))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            for i in queue:
                async with session.post(url, data=bodies[i], headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"app answered {response.status}")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(bodies)))))
        elapsed = time.perf_counter() - started
    return {"rate": events / elapsed, "events": events}


async def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    kinds = {"latency": loadgen_latency, "bulk": loadgen_bulk, "ceiling": loadgen_app_ceiling}
    return await kinds[spec["kind"]](spec)


# --- the app for (d) (its own process, started by tether run) --------------------------------
def serve_app(port: int) -> None:
    from aiohttp import web

    stats: dict[str, dict[str, float]] = {}

    def note(route: str, events: int) -> None:
        now = time.monotonic()  # system-wide clock: the bench process reads it too
        entry = stats.setdefault(route, {"count": 0, "requests": 0, "first": now, "last": now})
        entry["count"] += events
        entry["requests"] += 1
        entry["last"] = now

    async def events(request: web.Request) -> web.Response:
        await request.read()
        note("events", 1)
        return web.json_response({"status": "SUCCESS"})

    async def bulk(request: web.Request) -> web.Response:
        envelope = json.loads(await request.read())
        statuses = [{"entryId": e["entryId"], "status": "SUCCESS"} for e in envelope["entries"]]
        note("bulk", len(statuses))
        return web.json_response({"statuses": statuses})

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def reset(request: web.Request) -> web.Response:
        stats.clear()
        return web.Response(status=204)

    async def subscribe(request: web.Request) -> web.Response:
        return web.json_response([])  # the subscriptions are declarative

    app = web.Application()
    app.add_routes([web.post("/events", events), web.post("/bulk", bulk),
                    web.get("/stats", get_stats), web.post("/reset", reset),
                    web.get("/dapr/subscribe", subscribe)])
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


@contextlib.contextmanager
def tracing_config(folder: Path, rate: float | None) -> Iterator[Path | None]:
    """With a sampling ``rate``: a Configuration exporting the sidecar's spans over OTLP/HTTP
    to a sink in this process (a thread answering 200), so tracing costs what it would with
    a collector; None: no Configuration (tracing off)."""
    if rate is None:
        yield None
        return
    import http.server
    import threading

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = folder / f"tracing-{uuid.uuid4().hex[:6]}.yaml"
    config.write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: tracing}\n"
        f"spec:\n  tracing:\n    samplingRate: \"{rate}\"\n    otel: {{endpointAddress: "
        f"\"127.0.0.1:{server.server_address[1]}\", protocol: http, isSecure: false}}\n")
    try:
        yield config
    finally:
        server.shutdown()


# --- (a) publish latency ------------------------------------------------------------------------
async def part_a(backend: Backend, folder: Path, args: argparse.Namespace) -> None:
    count = int(args.rate * args.seconds)
    warmup = max(1, int(args.rate * args.warmup))
    with tracing_config(folder, args.tracing) as config, \
            sidecar(backend, folder, config=config) as running:
        results = {}
        for target in ("direct", "http"):  # one topic each, so neither reads the other's data
            topic = new_topic("lat")
            await create_topics(backend, topic)
            cpu = running.cpu()
            results[target] = await run_role({
                "kind": "latency", "target": target, "topic": topic, "count": count,
                "warmup": warmup, "rate": args.rate, "sidecar": running.base,
                "broker": backend.url,
            })
            results[target]["sidecar_cpu_per"] = (running.cpu() - cpu) / (count + warmup)
    traced = "off" if args.tracing is None else f"sampling {args.tracing:g}"
    print(f"(a) {backend.name}: HTTP publish at {args.rate:,.0f}/s, tracing {traced}, "
          f"{count:,} requests "
          f"after {warmup:,} warm-up, sidecar = tether run process, load generator = process",
          flush=True)
    for target, label in (("direct", "direct broker.publish"), ("http", "HTTP via sidecar")):
        r = results[target]
        print(f"    {label:<22} p50 {r['p50'] * 1e3:6.2f} ms  p90 {r['p90'] * 1e3:6.2f} ms  "
              f"p99 {r['p99'] * 1e3:6.2f} ms  max {r['max'] * 1e3:7.2f} ms  "
              f"(sent {r['rate']:,.0f}/s, start lag p99 {r['lag_p99'] * 1e3:.2f} ms; CPU per "
              f"request: load generator {r['cpu_per'] * 1e6:.0f} us, sidecar "
              f"{r['sidecar_cpu_per'] * 1e6:.0f} us)", flush=True)
    direct, http = results["direct"], results["http"]
    added = {q: (http[q] - direct[q]) * 1e3 for q in ("p50", "p90", "p99")}
    print(f"    added by the sidecar  p50 {added['p50']:+.2f} ms  p90 {added['p90']:+.2f} ms  "
          f"p99 {added['p99']:+.2f} ms   ratio http/direct p50 {http['p50'] / direct['p50']:.2f}x"
          f"  (Dapr's published figures: p50 +{DAPR_P50_MS} ms, p99 +{DAPR_P99_MS} ms)",
          flush=True)


# --- (b) bulk publish ----------------------------------------------------------------------------
async def part_b(backend: Backend, folder: Path, args: argparse.Namespace) -> None:
    with sidecar(backend, folder) as running:
        for batch in args.bulk_sizes:
            results = {}
            for target in ("direct", "http"):
                topic = new_topic("bulk")
                await create_topics(backend, topic)
                cpu = running.cpu()
                results[target] = await run_role({
                    "kind": "bulk", "target": target, "topic": topic, "batch": batch,
                    "count": max(args.bulk_events, batch), "sidecar": running.base,
                    "broker": backend.url,
                })
                results[target]["sidecar_cpu"] = running.cpu() - cpu
            direct, http = results["direct"], results["http"]
            per_event = http["sidecar_cpu"] / (http["events"] + batch)  # with the warm-up batch
            print(f"(b) {backend.name}: bulk of {batch:>5}  direct publish_batch "
                  f"{direct['rate']:>9,.0f}/s  HTTP bulk {http['rate']:>9,.0f}/s  ratio "
                  f"{http['rate'] / direct['rate']:.0%} of direct ({http['events']:,} events; CPU "
                  f"per event: direct {direct['cpu_per'] * 1e6:.0f} us, HTTP load generator "
                  f"{http['cpu_per'] * 1e6:.0f} us + sidecar {per_event * 1e6:.0f} us)",
                  flush=True)


# --- (c) SDK publish -> handler ------------------------------------------------------------------
async def windows(count: int, window: int, publish: Callable[[int], Awaitable[None]]) -> None:
    for start in range(0, count, window):
        await asyncio.gather(*(publish(i) for i in range(start, min(count, start + window))))


async def wait_count(get: Callable[[], int], target: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while get() < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {get()} of {target} after {timeout}s")
        await asyncio.sleep(0.002)


async def sdk_rate(backend: Backend, count: int, window: int) -> float:
    from tether import App

    topic = new_topic("sdk")
    await create_topics(backend, topic)
    app = App(f"bench-{uuid.uuid4().hex[:6]}", broker=backend.url)
    seen = 0

    @app.subscribe(topic=topic)
    async def handler(event: CloudEvent) -> None:
        nonlocal seen
        seen += 1

    async with app.run():
        await app.publish(PUBSUB, topic, payload(0), partition_key="key-0")
        await wait_count(lambda: seen, 1, 60, "sdk warm-up")  # the group has joined
        started = time.perf_counter()
        await windows(count, window, lambda i: app.publish(
            PUBSUB, topic, payload(i), partition_key=f"key-{i % KEYS}"))
        await wait_count(lambda: seen, count + 1, 300, "sdk")
        return count / (time.perf_counter() - started)


async def broker_rate(backend: Backend, count: int, window: int) -> float:
    topic, group = new_topic("layer"), new_topic("g")
    broker = open_broker(backend.url)
    async with broker:
        await broker.create_topic(topic, PARTITIONS)
        seen = 0

        async def consume() -> None:
            nonlocal seen
            async with broker.subscribe(topic, group) as subscription:
                async for delivery in subscription:
                    await delivery.ack()
                    seen += 1
                    if seen == count + 1:
                        return

        consumer = asyncio.create_task(consume())
        events = [sidecar_event(topic, i) for i in range(count + 1)]
        for i, event in enumerate(events):
            event.extensions["partitionkey"] = f"key-{i % KEYS}"
        await broker.publish(topic, events[count])
        await wait_count(lambda: seen, 1, 60, "broker warm-up")
        started = time.perf_counter()
        await windows(count, window, lambda i: broker.publish(topic, events[i]))
        await consumer
        return count / (time.perf_counter() - started)


async def raw_kafka_rate(address: str, count: int, window: int) -> float:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from tether.brokers.kafka.codec import to_kafka

    topic, group = new_topic("raw"), new_topic("g")
    broker = open_broker(f"kafka://{address}")
    async with broker:
        await broker.create_topic(topic, PARTITIONS)
    # the bytes Tether would send (prepared per event inside the clock, as the SDK does)
    producer = AIOKafkaProducer(bootstrap_servers=address, acks="all", linger_ms=5)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=address, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", fetch_max_wait_ms=100,
    )
    await producer.start()
    await consumer.start()
    seen = 0

    async def consume() -> None:
        nonlocal seen
        while seen < count + 1:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            seen += sum(len(records) for records in batches.values())
            if batches:
                await consumer.commit()

    async def send(i: int) -> None:
        event = sidecar_event(topic, i)
        event.extensions["partitionkey"] = f"key-{i % KEYS}"
        key, value, headers = to_kafka(event)
        await (await producer.send(topic, value=value, key=key, headers=headers))

    try:
        task = asyncio.create_task(consume())
        await send(count)
        await wait_count(lambda: seen, 1, 60, "kafka warm-up")
        started = time.perf_counter()
        await windows(count, window, send)
        await task
        return count / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await consumer.stop()


async def raw_redis_rate(address: str, count: int, window: int) -> float:
    import redis.asyncio as redis

    from tether.brokers.redis.codec import to_redis_fields

    host, port = address.split(":")
    # a blocking pool of 100 connections, as Tether's Redis broker has (the default pool
    # fails past 100 calls in flight)
    client = redis.Redis.from_pool(redis.BlockingConnectionPool(
        host=host, port=int(port), max_connections=100))
    reader = redis.Redis(host=host, port=int(port))
    stream, group = new_topic("raw"), "raw"
    await client.xgroup_create(stream, group, id="$", mkstream=True)
    seen = 0

    async def consume() -> None:
        nonlocal seen
        while seen < count + 1:
            reply = await reader.xreadgroup(group, "c1", {stream: ">"}, count=1000, block=100)
            for _, messages in reply or ():
                ids = [message_id for message_id, _ in messages]
                seen += len(ids)
                await reader.xack(stream, group, *ids)

    async def send(i: int) -> None:
        # one XADD per event, as many in flight as Tether's side has: the same work shape
        event = sidecar_event(stream, i)
        event.extensions["partitionkey"] = f"key-{i % KEYS}"
        await client.xadd(stream, to_redis_fields(event))  # type: ignore[arg-type]

    try:
        task = asyncio.create_task(consume())
        await send(count)
        await wait_count(lambda: seen, 1, 60, "redis warm-up")
        started = time.perf_counter()
        await windows(count, window, send)
        await task
        return count / (time.perf_counter() - started)
    finally:
        await client.aclose()
        await reader.aclose()


async def part_c(backend: Backend, folder: Path, args: argparse.Namespace) -> None:
    count, window = args.sdk_events, args.window
    raw: float | None = None
    if backend.name == "kafka" and backend.address:
        raw = await raw_kafka_rate(backend.address, count, window)
        raw_name = "raw aiokafka"
    elif backend.name == "redis" and backend.address:
        raw = await raw_redis_rate(backend.address, count, window)
        raw_name = "raw redis-py"
    layer = await broker_rate(backend, count, window)
    sdk = await sdk_rate(backend, count, window)
    line = (f"(c) {backend.name}: publish -> handler, {count:,} events, {window} in flight: "
            f"tether.App {sdk:>8,.0f}/s  broker layer {layer:>8,.0f}/s")
    if raw is not None:
        line += f"  {raw_name} {raw:>8,.0f}/s  ratio {sdk / raw:.0%} of raw (target 70%)"
    line += f"  ratio {sdk / layer:.0%} of broker layer"
    print(line, flush=True)


# --- (d) HTTP delivery ---------------------------------------------------------------------------
DELIVERY_RUNS = ("single", "single-keyed", "bulk", "bulk-keyed")
SUBSCRIPTION = """\
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: {name}
spec:
  pubsubname: pubsub
  topic: {topic}
  routes:
    default: /{route}
{bulk}---
"""


async def wait_app(session: Any, port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            await app_stats(session, port)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def app_stats(session: Any, port: int) -> dict[str, dict[str, float]]:
    async with session.get(f"http://127.0.0.1:{port}/stats") as response:
        stats: dict[str, dict[str, float]] = await response.json()
        return stats


async def delivered_rate(backend: Backend, running: Running, session: Any, port: int,
                         topic: str, route: str, count: int, keys: int
                         ) -> tuple[float, float, float]:
    """Events/s from the first delivery to the last, the sidecar's CPU seconds per event
    and the events per request; ``keys`` partition keys (0: none)."""
    broker = open_broker(backend.url)
    async with broker:
        await broker.publish(topic, sidecar_event(topic, 0))
        deadline = time.monotonic() + 120
        while (await app_stats(session, port)).get(route, {}).get("count", 0) < 1:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no warm-up delivery to /{route} within 120s")
            await asyncio.sleep(0.05)
        async with session.post(f"http://127.0.0.1:{port}/reset"):
            pass
        events = [sidecar_event(topic, i) for i in range(count)]
        for i, event in enumerate(events):
            if keys:
                event.extensions["partitionkey"] = f"key-{i % keys}"
        published, cpu = time.monotonic(), running.cpu()
        for start in range(0, count, 1000):
            await broker.publish_batch(topic, events[start : start + 1000])
        deadline = time.monotonic() + 600
        while True:
            entry = (await app_stats(session, port)).get(route, {})
            if entry.get("count", 0) >= count:
                cpu = (running.cpu() - cpu) / count
                per_request = entry["count"] / entry["requests"]
                if entry["last"] > entry["first"]:
                    rate = (entry["count"] - 1) / (entry["last"] - entry["first"])
                else:
                    rate = entry["count"] / (entry["last"] - published)  # all in one request
                return rate, cpu, per_request
            if time.monotonic() > deadline:
                raise TimeoutError(f"/{route}: {entry.get('count', 0)} of {count} delivered")
            await asyncio.sleep(0.05)


async def part_d(backend: Backend, folder: Path, args: argparse.Namespace) -> None:
    import aiohttp

    # the ceiling runs at the delivery worker's concurrency (tether run has no flag for it)
    count, concurrency, bulk_size = args.delivery_events, DEFAULT_MAX_CONCURRENCY, 100
    # (label, route, partition keys, events): keyless is what a publish without
    # metadata.partitionKey gives; keyed events are delivered one at a time per key
    runs = [run for run, name in zip([
        ("one by one, no keys", "events", 0, count),
        (f"one by one, {KEYS} keys", "events", KEYS, count),
        (f"bulk of {bulk_size}, no keys", "bulk", 0, count),
        (f"bulk of {bulk_size}, {KEYS} keys", "bulk", KEYS, max(1, count // 5)),
    ], DELIVERY_RUNS, strict=True) if name in args.delivery_runs]
    topics = [new_topic("deliver") for _ in runs]
    await create_topics(backend, *topics)
    bulk = ("  bulkSubscribe:\n    enabled: true\n"
            f"    maxMessagesCount: {bulk_size}\n    maxAwaitDurationMs: 100\n")
    subscriptions = "".join(
        SUBSCRIPTION.format(name=f"bench-{i}", topic=topic, route=route,
                            bulk=bulk if route == "bulk" else "")
        for i, (topic, (_, route, _, _)) in enumerate(zip(topics, runs, strict=True))
    )
    app_port = free_port()
    app_command = [sys.executable, __file__, "--role", "app", "--port", str(app_port)]
    app_id = f"benchapp-{uuid.uuid4().hex[:6]}"
    with sidecar(backend, folder, app_id=app_id, subscriptions=subscriptions,
                 app_command=app_command, app_port=app_port) as running:
        async with aiohttp.ClientSession() as session:
            await wait_app(session, app_port)
            ceilings = {
                # the same events in flight: a bulk of 100 holds 100 of the worker's permits
                route: (await run_role({"kind": "ceiling", "app_port": app_port, "count": count,
                                        "concurrency": max(1, concurrency // max(1, size)),
                                        "bulk": size}))["rate"]
                for route, size in (("events", 0), ("bulk", bulk_size))
                if any(run[1] == route for run in runs)
            }
            rates = [await delivered_rate(backend, running, session, app_port, topic, route, n,
                                          keys)
                     for topic, (_, route, keys, n) in zip(topics, runs, strict=True)]
    print(f"(d) {backend.name}: HTTP delivery by tether run to an aiohttp app in its own "
          f"process, concurrency {concurrency}; app ceiling = the app driven directly by an "
          f"aiohttp client (own process) at that concurrency", flush=True)
    for (label, route, _, n), (rate, cpu, per_request) in zip(runs, rates, strict=True):
        ceiling = ceilings[route]
        print(f"    {label:<22} {n:>7,} events  tether run {rate:>8,.0f}/s  app ceiling "
              f"{ceiling:>8,.0f}/s  ratio {rate / ceiling:.0%} of ceiling  (sidecar CPU "
              f"{cpu * 1e6:.0f} us per event, {per_request:.0f} events per request)", flush=True)


# --- main ---------------------------------------------------------------------------------------
PARTS: dict[str, Callable[[Backend, Path, argparse.Namespace], Awaitable[None]]] = {
    "a": part_a, "b": part_b, "c": part_c, "d": part_d,
}


async def run(args: argparse.Namespace) -> None:
    print(f"pub/sub bench: parts {' '.join(args.parts)}, backends {' '.join(args.backends)}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}\n", flush=True)
    for name in args.backends:
        with tempfile.TemporaryDirectory(prefix="tether-bench-") as tmp, \
                open_backend(name, Path(tmp)) as backend:
            for part in args.parts:
                await PARTS[part](backend, Path(tmp), args)
        print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--backends", nargs="+", default=["embedded", "redis", "kafka"],
                        choices=["embedded", "redis", "kafka"])
    parser.add_argument("--rate", type=float, default=1000, help="(a) requests/s")
    parser.add_argument("--seconds", type=float, default=10, help="(a) measured seconds")
    parser.add_argument("--warmup", type=float, default=1, help="(a) warm-up seconds")
    parser.add_argument("--tracing", type=float, metavar="RATE",
                        help="(a) trace the sidecar at this sampling rate, to a local OTLP sink")
    parser.add_argument("--bulk-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--bulk-events", type=int, default=50_000, help="(b) events per size")
    parser.add_argument("--sdk-events", type=int, default=20_000, help="(c) events")
    parser.add_argument("--window", type=int, default=1000, help="(c) publishes in flight")
    parser.add_argument("--delivery-events", type=int, default=10_000, help="(d) events")
    parser.add_argument("--delivery-runs", nargs="+", default=list(DELIVERY_RUNS),
                        choices=DELIVERY_RUNS, help="(d) which deliveries to measure")
    parser.add_argument("--role", choices=["loadgen", "app"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "loadgen":
        print(json.dumps(asyncio.run(loadgen(json.loads(args.spec)))), flush=True)
    elif args.role == "app":
        serve_app(args.port)
    else:
        # SIGTERM unwinds like Ctrl+C, so the tether run and server processes are stopped
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
