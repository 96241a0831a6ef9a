"""Bindings end to end (issue 13): input events/s and output ops/s through ``tether run``,
each against the raw client doing the same work in the same run.

    .venv/bin/python bench/bindings.py [--parts input output]
                                       [--sources rabbitmq mqtt kafka]
                                       [--outputs rabbitmq redis postgresql]
                                       [--messages 5000] [--size 100]
                                       [--seconds 5] [--workers 16]
                                       [--pubsub embedded|redis] [--quick]

Input: the source's messages reach a plain aiohttp app (its own process, started by
``tether run``) as ``POST /<binding>``; the app answers 200 and counts the distinct bodies
and the first and last arrival. Events/s = (N - 1) / (last - first) as the app saw them, so
the sidecar's start-up and lease are left out; "start->1st" is the time from ``tether run``
start to the first delivery, and "emit ms" the sidecar's mean time to put one message on
its Tether topic (from its metrics: the reader emits one message at a time, so 1000 / emit
ms bounds what it can take off the source). The raw baseline is the same client library
consuming N messages of its own queue/topic in this process, acking each after handling it
as the component does (RabbitMQ: manual ack, prefetch unlimited; Kafka: commit of each
record; MQTT: QoS 1 with a manual PUBACK), timed from its first message to its last.

- RabbitMQ and Kafka: N messages are loaded into the source before ``tether run`` (and the
  raw consumer) starts. Kafka runs on a tansu broker started here (or ``--kafka``).
- MQTT: Mosquitto keeps at most 1,000 QoS 1 messages queued per client (its default
  ``max_queued_messages``) and drops the rest, so N cannot be loaded in advance. The
  messages are published live by this process with at most ``--window`` published and not
  yet received (the app's count, polled, or the raw consumer's), the same window for both.
  Tether's MQTT input has one key per topic, so its events reach the app one at a time.

Output: ``--workers`` closed-loop senders for ``--seconds`` send ``POST
/v1.0/bindings/<name>`` to the sidecar (no app): RabbitMQ ``create`` (a persistent message
with publisher confirms), Redis ``create`` (SET) and PostgreSQL ``exec`` (an INSERT with one
parameter into a table made for the run). The raw client does the same operation with the
same concurrency (aio-pika on one channel with confirms, redis-py over a blocking pool,
psycopg over a pool of the component's default size, 4). Ops/s, p50 and p99.

Tether's pub/sub broker is the embedded one (a fresh SQLite file) or ``--pubsub redis``
(``--redis``; the run's topics carry its tag and are deleted at the end). RabbitMQ
(``--rabbitmq``), Mosquitto (``--mqtt``), Redis and PostgreSQL (``--postgres``) are the
machine's servers. The figures
are never checked here; record them in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _load import RawPool, http_request, percentile  # noqa: E402
from pubsub import wait_http  # noqa: E402

from tests.servers import free_port, run_tansu  # noqa: E402

TETHER = [sys.executable, "-m", "tether.cli.main"]
SOURCES = ("rabbitmq", "mqtt", "kafka")
OUTPUTS = ("rabbitmq", "redis", "postgresql")
#: the component's default PostgreSQL pool size (bindings.postgresql maxConns)
PG_POOL = 4
#: the app's route of the warm-up messages (MQTT), not counted
WARM = b"warm"
#: MQTT QoS 1 publishes awaiting their PUBACK at a time
PUBLISHES_IN_FLIGHT = 50


def body(i: int, size: int) -> bytes:
    """Message i: its number then filler, ``size`` bytes (distinct per message)."""
    head = f"m{i:07d}-".encode()
    return head + b"x" * max(0, size - len(head))


def component(name: str, type_: str, **meta: str) -> dict[str, Any]:
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": name},
            "spec": {"type": type_, "version": "v1",
                     "metadata": [{"name": k, "value": v} for k, v in meta.items()]}}


def pubsub_component(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    if args.pubsub == "redis":
        # pubsub.redis takes no namespace: the run's topics and groups are its own through
        # the binding names and app ids (both carry the run tag), deleted at the end
        return component("pubsub", "pubsub.redis", redisHost=args.redis)
    return component("pubsub", "pubsub.tether.embedded",
                     path=str(folder / f"broker-{uuid.uuid4().hex[:6]}.db"))


# --- tether run ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Running:
    base: str
    port: int
    started: float  # time.time() when tether run was started
    metrics_port: int | None = None


@contextlib.contextmanager
def tether_run(folder: Path, run_tag: str, components: Sequence[dict[str, Any]], *,
               app_port: int | None = None, app_command: Sequence[str] = (),
               metrics: bool = False) -> Iterator[Running]:
    """``tether run`` as a real process with ``components``; yields once its API answers."""
    tag = uuid.uuid4().hex[:6]
    resources = folder / f"resources-{tag}"
    resources.mkdir()
    (resources / "components.yaml").write_text(yaml.safe_dump_all(components))
    port = free_port()
    command = [*TETHER, "run", "--app-id", f"bench-{run_tag}-{tag}", "--http-port", str(port),
               "--resources-path", str(resources)]
    metrics_port = free_port() if metrics else None
    command += ["--metrics-port", str(metrics_port)] if metrics_port else \
        ["--enable-metrics", "false"]
    if app_port is not None:
        command += ["--app-port", str(app_port)]
    if app_command:
        command += ["--", *app_command]
    log_path = folder / f"tether-{tag}.log"
    log = log_path.open("wb")
    started = time.time()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    try:
        wait_http(f"http://127.0.0.1:{port}/v1.0/healthz", process, log_path)
        yield Running(f"http://127.0.0.1:{port}", port, started, metrics_port)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
    if process.returncode not in (0, -signal.SIGTERM, 143):
        raise RuntimeError(f"tether run exited with {process.returncode}:\n"
                           f"{log_path.read_text()[-2000:]}")


# --- the app (its own process, started by tether run) ------------------------------------------
def serve_app(port: int) -> None:
    """Counts the distinct bodies POSTed to each path and their first and last arrival (the
    system-wide wall clock, so the bench process can compare it with when it started)."""
    from aiohttp import web

    seen: dict[str, set[bytes]] = {}
    stats: dict[str, dict[str, float]] = {}

    async def event(request: web.Request) -> web.Response:
        data = await request.read()
        entry = stats.setdefault(request.path,
                                 {"count": 0, "posts": 0, "warm": 0, "first": 0, "last": 0})
        if data == WARM:
            entry["warm"] += 1
            return web.Response(status=200)
        now = time.time()
        bodies = seen.setdefault(request.path, set())
        bodies.add(data)
        entry["posts"] += 1
        entry["count"] = len(bodies)
        if entry["posts"] == 1:
            entry["first"] = now
        entry["last"] = now
        return web.Response(status=200)

    async def options(request: web.Request) -> web.Response:
        return web.Response(status=200)  # every binding is wanted

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def subscribe(request: web.Request) -> web.Response:
        return web.json_response([])

    app = web.Application()
    app.add_routes([web.get("/stats", get_stats), web.get("/dapr/subscribe", subscribe),
                    web.route("OPTIONS", "/{tail:.*}", options),
                    web.post("/{tail:.*}", event)])
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


class AppWatch:
    """Polls the app's counters for one path in the background."""

    def __init__(self, port: int, path: str, every: float) -> None:
        self.port, self.path, self.every = port, path, every
        self.entry: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def count(self) -> int:
        return int(self.entry.get("count", 0))

    async def __aenter__(self) -> AppWatch:
        import aiohttp

        self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._poll())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._session.close()

    async def _poll(self) -> None:
        url = f"http://127.0.0.1:{self.port}/stats"
        while True:
            with contextlib.suppress(OSError, ValueError):
                async with self._session.get(url) as response:
                    self.entry = (await response.json()).get(self.path, {})
            await asyncio.sleep(self.every)

    async def until(self, count: int, timeout: float, alive: Callable[[], None]) -> None:
        deadline = time.monotonic() + timeout
        while self.count < count:
            alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path}: {self.count} of {count} after {timeout:.0f}s")
            await asyncio.sleep(self.every)


@dataclass
class InputResult:
    rate: float
    duplicates: int = 0
    to_first: float | None = None  # seconds from tether run start to the first delivery
    emit_ms: float | None = None  # mean time the reader took to put one event on its topic


async def through_tether(folder: Path, args: argparse.Namespace, binding: dict[str, Any],
                         count: int, live: Callable[[AppWatch], Awaitable[None]] | None = None
                         ) -> InputResult:
    """Start ``tether run`` with ``binding`` and the app; wait until the app has ``count``
    distinct messages (after ``live`` sent them, when the source is not pre-loaded)."""
    name = binding["metadata"]["name"]
    app_port = free_port()
    command = [sys.executable, __file__, "--role", "app", "--port", str(app_port)]
    with tether_run(folder, args.tag, [pubsub_component(args, folder), binding],
                    app_port=app_port,
                    app_command=command, metrics=True) as running:
        async with AppWatch(app_port, f"/{name}", 0.01 if live else 0.05) as watch:
            if live is not None:
                await live(watch)
            await watch.until(count, args.timeout, lambda: None)
            entry = watch.entry
        emit_ms = await mean_emit_ms(running)
    first, last = entry["first"], entry["last"]
    return InputResult(rate=(count - 1) / max(last - first, 1e-9),
                       duplicates=int(entry["posts"] - entry["count"]),
                       to_first=None if live else first - running.started, emit_ms=emit_ms)


async def mean_emit_ms(running: Running) -> float | None:
    """The reader's mean time per event from the sidecar's metrics: its emits are serial,
    so 1000 / this is the most events/s the reader can take off the source."""
    import aiohttp

    totals = {"sum": 0.0, "count": 0.0}
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{running.metrics_port}/metrics") as response:
        for line in (await response.text()).splitlines():
            for kind in totals:
                if line.startswith(f"dapr_component_input_binding_latencies_{kind}{{") \
                        and 'success="true"' in line:
                    totals[kind] += float(line.rsplit(" ", 1)[1])
    return totals["sum"] / totals["count"] if totals["count"] else None


# --- RabbitMQ -----------------------------------------------------------------------------------
async def rabbit_declare(channel: Any, queue: str) -> Any:
    # the component's declaration (durable: true, deleteWhenUnused: false) exactly, or
    # RabbitMQ refuses the second one
    return await channel.declare_queue(queue, durable=True, auto_delete=False, exclusive=False)


async def rabbit_load(url: str, queue: str, count: int, size: int) -> None:
    import aio_pika

    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        await rabbit_declare(channel, queue)
        for start in range(0, count, 500):
            await asyncio.gather(*(
                channel.default_exchange.publish(
                    aio_pika.Message(body(i, size), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                    routing_key=queue)
                for i in range(start, min(count, start + 500))))


async def rabbit_raw(url: str, queue: str, count: int) -> InputResult:
    import aio_pika

    seen: set[bytes] = set()
    first = last = 0.0
    async with await aio_pika.connect(url) as connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=0)  # the component's default
        source = await rabbit_declare(channel, queue)
        async with source.iterator() as deliveries:
            async for delivery in deliveries:
                seen.add(delivery.body)  # handling, then the ack
                await delivery.ack()
                last = time.perf_counter()
                if len(seen) == 1:
                    first = last
                if len(seen) >= count:
                    break
    return InputResult(rate=(count - 1) / max(last - first, 1e-9))


async def rabbit_delete(url: str, *queues: str) -> None:
    import aio_pika

    with contextlib.suppress(Exception):
        async with await aio_pika.connect(url) as connection:
            channel = await connection.channel()
            for queue in queues:
                await channel.queue_delete(queue)


async def input_rabbitmq(folder: Path, args: argparse.Namespace) -> tuple[InputResult,
                                                                            InputResult]:
    tag = args.tag
    mine, raw = f"bench-bindings-{tag}", f"bench-bindings-raw-{tag}"
    try:
        await rabbit_load(args.rabbitmq, raw, args.messages, args.size)
        baseline = await rabbit_raw(args.rabbitmq, raw, args.messages)
        await rabbit_load(args.rabbitmq, mine, args.messages, args.size)
        binding = component(f"orders-{tag}", "bindings.rabbitmq", host=args.rabbitmq,
                            queueName=mine, durable="true", deleteWhenUnused="false",
                            direction="input")
        tether = await through_tether(folder, args, binding, args.messages)
    finally:
        await rabbit_delete(args.rabbitmq, mine, raw)
    return tether, baseline


# --- Kafka --------------------------------------------------------------------------------------
async def kafka_load(address: str, topic: str, count: int, size: int) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=address, acks="all", linger_ms=5)
    await producer.start()
    try:
        # keyless records, as a source without keys: Tether delivers them concurrently
        futures = [await producer.send(topic, body(i, size)) for i in range(count)]
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def kafka_raw(address: str, topic: str, count: int) -> InputResult:
    from aiokafka import AIOKafkaConsumer

    from tether.platform.bindings.components.kafka import FETCH_MAX_WAIT_MS

    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=address, group_id=f"raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False, auto_offset_reset="earliest",
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    seen: set[bytes] = set()
    first = last = 0.0
    try:
        while len(seen) < count:
            batches = await consumer.getmany(timeout_ms=1000)
            for partition, records in batches.items():
                for record in records:
                    seen.add(record.value)  # handling, then the commit, as the component
                    await consumer.commit({partition: record.offset + 1})
                    last = time.perf_counter()
                    if len(seen) == 1:
                        first = last
    finally:
        await consumer.stop()
    return InputResult(rate=(count - 1) / max(last - first, 1e-9))


async def input_kafka(folder: Path, args: argparse.Namespace) -> tuple[InputResult,
                                                                         InputResult]:
    tag = args.tag
    mine, raw = f"bench-bindings-{tag}", f"bench-bindings-raw-{tag}"
    await kafka_load(args.kafka, raw, args.messages, args.size)
    baseline = await kafka_raw(args.kafka, raw, args.messages)
    await kafka_load(args.kafka, mine, args.messages, args.size)
    binding = component(f"clicks-{tag}", "bindings.kafka", brokers=args.kafka, topics=mine,
                        consumerGroup=f"bench-{tag}", initialOffset="oldest",
                        direction="input")
    tether = await through_tether(folder, args, binding, args.messages)
    return tether, baseline


# --- MQTT ---------------------------------------------------------------------------------------
def mqtt_host(args: argparse.Namespace) -> tuple[str, int]:
    host, _, port = args.mqtt.rpartition(":")
    return host, int(port)


async def mqtt_publish(args: argparse.Namespace, topic: str, count: int,
                       received: Callable[[], int]) -> None:
    """Publish ``count`` QoS 1 messages, never more than ``--window`` ahead of
    ``received()``, and up to PUBLISHES_IN_FLIGHT publishes awaiting their PUBACK at a time."""
    import aiomqtt

    host, port = mqtt_host(args)
    async with aiomqtt.Client(host, port, identifier=f"bench-pub-{uuid.uuid4().hex[:8]}"
                              ) as client:
        client.pending_calls_threshold = PUBLISHES_IN_FLIGHT + 1  # no warning per publish
        in_flight: set[asyncio.Task[None]] = set()
        for i in range(count):
            while i - received() >= args.window or len(in_flight) >= PUBLISHES_IN_FLIGHT:
                if len(in_flight) >= PUBLISHES_IN_FLIGHT:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(0.001)
            task = asyncio.create_task(client.publish(topic, body(i, args.size), qos=1))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.gather(*in_flight)


async def mqtt_warm(args: argparse.Namespace, topic: str, arrived: Callable[[], bool]) -> None:
    """Publish warm-up messages until the subscriber got one (it is subscribed)."""
    import aiomqtt

    host, port = mqtt_host(args)
    deadline = time.monotonic() + args.timeout
    async with aiomqtt.Client(host, port, identifier=f"bench-warm-{uuid.uuid4().hex[:8]}"
                              ) as client:
        while not arrived():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no warm-up message arrived on {topic}")
            await client.publish(topic, WARM, qos=1)
            await asyncio.sleep(0.2)


async def mqtt_forget(args: argparse.Namespace, *client_ids: str) -> None:
    """Drop the persistent sessions the run left on the broker (clean session connect)."""
    import aiomqtt

    host, port = mqtt_host(args)
    for client_id in client_ids:
        with contextlib.suppress(Exception):
            async with aiomqtt.Client(host, port, identifier=client_id, clean_session=True):
                pass


async def mqtt_raw(args: argparse.Namespace, topic: str, client_id: str) -> InputResult:
    import aiomqtt

    host, port = mqtt_host(args)
    seen: set[bytes] = set()
    warm = False
    first = last = 0.0
    client = aiomqtt.Client(host, port, identifier=client_id, clean_session=False)
    paho: Any = client._client  # manual PUBACK, as the component
    paho.manual_ack_set(True)
    async with client:
        await client.subscribe(topic, qos=1)

        async def consume() -> None:
            nonlocal warm, first, last
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes | bytearray)
                if payload == WARM:
                    warm = True
                else:
                    seen.add(bytes(payload))  # handling, then the PUBACK
                paho.ack(message.mid, message.qos)
                if payload != WARM:
                    last = time.perf_counter()
                    if len(seen) == 1:
                        first = last
                    if len(seen) >= args.messages:
                        return

        consumer = asyncio.create_task(consume())
        await mqtt_warm(args, topic, lambda: warm)
        await mqtt_publish(args, topic, args.messages, lambda: len(seen))
        await asyncio.wait_for(consumer, args.timeout)
    return InputResult(rate=(args.messages - 1) / max(last - first, 1e-9))


async def input_mqtt(folder: Path, args: argparse.Namespace) -> tuple[InputResult,
                                                                        InputResult]:
    tag = args.tag
    mine, raw = f"bench/bindings/{tag}", f"bench/bindings/raw-{tag}"
    consumer_id, raw_id = f"bench-{tag}", f"bench-raw-{tag}"
    try:
        baseline = await mqtt_raw(args, raw, raw_id)
        binding = component(f"sensors-{tag}", "bindings.mqtt3", url=f"tcp://{args.mqtt}",
                            topic=mine, consumerID=consumer_id, qos="1", direction="input")

        async def live(watch: AppWatch) -> None:
            await mqtt_warm(args, mine, lambda: watch.entry.get("warm", 0) > 0)
            await mqtt_publish(args, mine, args.messages, lambda: watch.count)

        tether = await through_tether(folder, args, binding, args.messages, live)
    finally:
        await mqtt_forget(args, raw_id, f"{consumer_id}-consumer", f"{consumer_id}-producer")
    return tether, baseline


# --- output -------------------------------------------------------------------------------------
@dataclass
class OutputResult:
    rate: float
    p50: float
    p99: float


async def closed_loop(seconds: float, workers: int, send: Callable[[], Awaitable[None]]
                      ) -> OutputResult:
    """``workers`` senders for ``seconds``, each sending its next call when its last one
    answered; ops/s and the latency percentiles (ms)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            await send()
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return OutputResult(len(ordered) / elapsed, percentile(ordered, 0.5) * 1e3,
                        percentile(ordered, 0.99) * 1e3)


async def through_sidecar(running: Running, name: str, request: dict[str, Any],
                          args: argparse.Namespace) -> OutputResult:
    pool = RawPool("127.0.0.1", running.port, http_request(
        "POST", f"/v1.0/bindings/{name}", f"127.0.0.1:{running.port}",
        json.dumps(request).encode()))
    failed: list[int] = []

    async def send() -> None:
        status = await pool.send()
        if status >= 300:
            failed.append(status)

    try:
        await closed_loop(min(1.0, args.seconds / 5), args.workers, send)  # warm-up
        result = await closed_loop(args.seconds, args.workers, send)
    finally:
        pool.close()
    if failed:
        raise RuntimeError(f"{name}: {len(failed)} calls failed (first status {failed[0]})")
    return result


async def raw_output(kind: str, args: argparse.Namespace, target: str, data: bytes
                     ) -> OutputResult:
    """The raw client doing the binding's operation with the same concurrency."""
    send: Callable[[], Awaitable[None]]
    async with contextlib.AsyncExitStack() as stack:
        if kind == "rabbitmq":
            import aio_pika

            connection = await aio_pika.connect_robust(args.rabbitmq)
            stack.push_async_callback(connection.close)
            channel = await connection.channel()  # publisher confirms on (aio-pika's default)
            await rabbit_declare(channel, target)

            async def send() -> None:
                await channel.default_exchange.publish(aio_pika.Message(
                    data, headers={}, content_type="text/plain",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=target)
        elif kind == "redis":
            import redis.asyncio as aioredis

            host, _, port = args.redis.rpartition(":")
            client = aioredis.Redis.from_pool(aioredis.BlockingConnectionPool(
                host=host, port=int(port), max_connections=100))
            stack.push_async_callback(client.aclose)

            async def send() -> None:
                await client.set(target, data)
        else:
            import psycopg
            from psycopg_pool import AsyncConnectionPool

            pool = AsyncConnectionPool(args.postgres, min_size=1, max_size=PG_POOL, open=False,
                                       kwargs={"autocommit": True})
            await pool.open(wait=True)
            stack.push_async_callback(pool.close)
            statement, params = f"INSERT INTO {target} (body) VALUES ($1)", [data.decode()]

            async def send() -> None:
                async with pool.connection() as conn:
                    async with psycopg.AsyncRawCursor(conn) as cursor:
                        await cursor.execute(statement, params)

        await closed_loop(min(1.0, args.seconds / 5), args.workers, send)  # warm-up
        return await closed_loop(args.seconds, args.workers, send)


async def output_part(folder: Path, args: argparse.Namespace
                      ) -> list[tuple[str, OutputResult, OutputResult]]:
    import psycopg

    tag = args.tag
    data = body(0, args.size)
    queue, raw_queue = f"bench-out-{tag}", f"bench-out-raw-{tag}"
    key, raw_key = f"bench-bindings:{tag}", f"bench-bindings:raw-{tag}"
    table, raw_table = f"bench_bindings_{tag}", f"bench_bindings_raw_{tag}"
    components = [pubsub_component(args, folder)]
    requests: dict[str, tuple[str, dict[str, Any], str]] = {}
    if "rabbitmq" in args.outputs:
        components.append(component(f"out-rabbitmq-{tag}", "bindings.rabbitmq", host=args.rabbitmq,
                                    queueName=queue, durable="true", deleteWhenUnused="false",
                                    direction="output"))
        requests["rabbitmq"] = (f"out-rabbitmq-{tag}", {"operation": "create",
                                                 "data": data.decode()}, raw_queue)
    if "redis" in args.outputs:
        components.append(component(f"out-redis-{tag}", "bindings.redis", redisHost=args.redis))
        requests["redis"] = (f"out-redis-{tag}", {"operation": "create", "data": data.decode(),
                                           "metadata": {"key": key}}, raw_key)
    if "postgresql" in args.outputs:
        components.append(component(f"out-pg-{tag}", "bindings.postgresql",
                                    connectionString=args.postgres))
        requests["postgresql"] = (f"out-pg-{tag}", {"operation": "exec", "metadata": {
            "sql": f"INSERT INTO {table} (body) VALUES ($1)",
            "params": json.dumps([data.decode()])}}, raw_table)
        async with await psycopg.AsyncConnection.connect(args.postgres, autocommit=True) as conn:
            for name in (table, raw_table):
                await conn.execute(f"CREATE TABLE {name} (id bigserial PRIMARY KEY, body text)")
    results = []
    try:
        with tether_run(folder, args.tag, components) as running:
            for kind in args.outputs:
                name, request, target = requests[kind]
                raw = await raw_output(kind, args, target, data)
                tether = await through_sidecar(running, name, request, args)
                results.append((kind, tether, raw))
    finally:
        await rabbit_delete(args.rabbitmq, queue, raw_queue)
        if "redis" in args.outputs:
            with contextlib.suppress(Exception):
                import redis.asyncio as aioredis

                host, _, port = args.redis.rpartition(":")
                client = aioredis.Redis(host=host, port=int(port))
                await client.delete(key, raw_key)
                await client.aclose()
        if "postgresql" in args.outputs:
            async with await psycopg.AsyncConnection.connect(args.postgres,
                                                             autocommit=True) as conn:
                for name in (table, raw_table):
                    await conn.execute(f"DROP TABLE IF EXISTS {name}")
    return results


# --- main ---------------------------------------------------------------------------------------
INPUTS: dict[str, Callable[[Path, argparse.Namespace], Awaitable[tuple[InputResult,
                                                                       InputResult]]]] = {
    "rabbitmq": input_rabbitmq, "mqtt": input_mqtt, "kafka": input_kafka,
}
RAW_CLIENT = {"rabbitmq": "aio-pika", "mqtt": "aiomqtt", "kafka": "aiokafka",
              "redis": "redis-py", "postgresql": "psycopg"}


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


async def run(args: argparse.Namespace, folder: Path) -> None:
    # every queue, topic, key and table of the run is named with this tag
    print(f"bindings bench: pub/sub {args.pubsub}, {os.cpu_count()} cores, run tag {args.tag}",
          flush=True)
    print(f"load average before: {loadavg()}", flush=True)
    if "input" in args.parts:
        print(f"\ninput: {args.messages:,} messages of {args.size} B per source, events/s "
              f"from the first delivery to the last (MQTT: live, window {args.window})",
              flush=True)
        print(f"{'source':10} {'raw client':>11} {'tether run':>11} {'ratio':>6}  "
              f"{'start->1st':>10} {'emit ms':>7}  notes", flush=True)
        for source in args.sources:
            tether, raw = await INPUTS[source](folder, args)
            start = f"{tether.to_first:9.1f}s" if tether.to_first is not None else f"{'-':>10}"
            emit = f"{tether.emit_ms:7.2f}" if tether.emit_ms is not None else f"{'-':>7}"
            notes = f"raw = {RAW_CLIENT[source]}"
            if tether.duplicates:
                notes += f"; {tether.duplicates} duplicate deliveries"
            print(f"{source:10} {raw.rate:>9,.0f}/s {tether.rate:>9,.0f}/s "
                  f"{tether.rate / raw.rate:>6.0%}  {start} {emit}  {notes}", flush=True)
    if "output" in args.parts:
        print(f"\noutput: {args.workers} closed-loop senders for {args.seconds:g} s, "
              f"{args.size} B data; ops/s and latency (ms)", flush=True)
        print(f"{'binding':10} {'raw ops/s':>10} {'p50':>6} {'p99':>6}  {'tether ops/s':>12} "
              f"{'p50':>6} {'p99':>6} {'ratio':>6}  raw client", flush=True)
        for kind, tether_out, raw_out in await output_part(folder, args):
            print(f"{kind:10} {raw_out.rate:>10,.0f} {raw_out.p50:>6.2f} {raw_out.p99:>6.2f}  "
                  f"{tether_out.rate:>12,.0f} {tether_out.p50:>6.2f} {tether_out.p99:>6.2f} "
                  f"{tether_out.rate / raw_out.rate:>6.0%}  {RAW_CLIENT[kind]}", flush=True)
    if args.pubsub == "redis":
        await forget_redis_topics(args)
    print(f"\nload average after: {loadavg()}", flush=True)


async def forget_redis_topics(args: argparse.Namespace) -> None:
    """Delete the run's topics and groups from the Redis pub/sub (every key naming the run
    tag; the sidecars' shared ``tether.scheduled`` topic stays)."""
    import redis.asyncio as aioredis

    host, _, port = args.redis.rpartition(":")
    client = aioredis.Redis(host=host, port=int(port))
    try:
        keys = [key async for key in client.scan_iter(match=f"tether:*{args.tag}*")]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start:start + 500])
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["input", "output"],
                        choices=["input", "output"])
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), choices=SOURCES)
    parser.add_argument("--outputs", nargs="+", default=list(OUTPUTS), choices=OUTPUTS)
    parser.add_argument("--messages", type=int, default=5000, help="input: messages per source")
    parser.add_argument("--size", type=int, default=100, help="bytes per message / call")
    parser.add_argument("--window", type=int, default=500,
                        help="MQTT: published and not yet received at most")
    parser.add_argument("--seconds", type=float, default=5.0, help="output: measured seconds")
    parser.add_argument("--workers", type=int, default=16, help="output: concurrent senders")
    parser.add_argument("--pubsub", choices=["embedded", "redis"], default="embedded",
                        help="Tether's pub/sub broker")
    parser.add_argument("--redis", default="127.0.0.1:6379")
    parser.add_argument("--rabbitmq", default=os.environ.get(
        "TETHER_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/"))
    parser.add_argument("--mqtt", default="127.0.0.1:1883")
    parser.add_argument("--kafka", help="host:port of a Kafka broker (default: start tansu)")
    parser.add_argument("--postgres", default=os.environ.get(
        "TETHER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="the longest wait for one source's messages")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 200 messages, 1 s, 4 senders")
    parser.add_argument("--role", choices=["app"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "app":
        serve_app(args.port)
        return
    args.tag = uuid.uuid4().hex[:8]
    if args.quick:
        args.messages, args.seconds, args.workers = min(args.messages, 200), 1.0, 4
        args.window = min(args.window, 100)
    # SIGTERM unwinds like Ctrl+C, so tether run and tansu are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="bench-bindings-") as tmp, \
            contextlib.ExitStack() as stack:
        if args.kafka is None and "input" in args.parts and "kafka" in args.sources:
            args.kafka = stack.enter_context(run_tansu())
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
