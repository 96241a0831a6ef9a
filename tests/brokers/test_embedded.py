"""What only the embedded (SQLite) broker promises: the file, durability, and several
processes sharing one file. The shared semantics are in test_contract.py."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.brokers.harness_embedded import EmbeddedHarness
from tests.workers import until as _until
from tether.brokers import BrokerConfigError, Delivery, Subscription, open_broker
from tether.brokers.embedded import SqliteStore, parse_url, schema, tables, wakeup
from tether.brokers.log.broker import LogBroker
from tether.brokers.log.subscription import LogSubscription
from tether.platform.events import CloudEvent

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0


def event(i: int, key: str | None = None) -> CloudEvent:
    extensions = {"partitionkey": key} if key is not None else {}
    return CloudEvent(type="test.embedded", source="/embedded", data={"i": i},
                      extensions=extensions)


async def take(subscription: Subscription, count: int) -> list[Delivery]:
    got: list[Delivery] = []

    async def run() -> None:
        async for delivery in subscription:
            got.append(delivery)
            await delivery.ack()
            if len(got) >= count:
                return

    await asyncio.wait_for(run(), WAIT)
    return got


# --- URLs ---------------------------------------------------------------------------------------
def test_url_paths_and_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = parse_url("embedded://data/broker.db")
    assert relative.path == tmp_path / "data" / "broker.db"
    config = parse_url(
        "embedded:///srv/t/b.db?partitions=8&session_timeout=5&heartbeat_interval=0.5"
        "&poll_interval=0.2&commit_interval=0.1&synchronous=full&busy_timeout=2"
        "&watch_interval=0.005"
    )
    assert config.path == Path("/srv/t/b.db")
    assert config.settings.default_partitions == 8
    assert config.settings.session_timeout == 5.0
    assert config.settings.heartbeat_interval == 0.5
    assert config.settings.poll_interval == 0.2
    assert config.settings.commit_interval == 0.1
    assert (config.synchronous, config.busy_timeout, config.watch_interval) == ("FULL", 2.0, 0.005)
    assert parse_url("embedded://b.db").synchronous == "NORMAL"


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("embedded://", "names no file"),
        ("embedded://dir/", "names no file"),
        ("embedded://b.db?colour=red", "unknown embedded broker option 'colour'"),
        ("embedded://b.db?synchronous=SOMETIMES", "synchronous="),
        ("embedded://b.db?partitions=0", "positive"),
        ("embedded://b.db?partitions=2.5", "whole number"),
        ("embedded://b.db?session_timeout=soon", "not a number"),
        ("embedded://b.db?session_timeout=1&heartbeat_interval=2", "heartbeat_interval"),
    ],
)
def test_bad_urls_are_config_errors(url: str, complaint: str) -> None:
    with pytest.raises(BrokerConfigError, match=complaint):
        open_broker(url)


async def test_connect_creates_the_parent_directory_and_uses_the_partition_option(
    tmp_path: Path,
) -> None:
    path = tmp_path / "not" / "yet" / "broker.db"
    async with open_broker(f"embedded://{path}?partitions=3") as broker:
        assert isinstance(broker, LogBroker)
        assert await broker.partition_count("fresh") == 3
    assert path.exists()
    with contextlib.closing(sqlite3.connect(path)) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# --- durability ---------------------------------------------------------------------------------
async def test_events_and_offsets_survive_closing_and_reopening(
    embedded_harness: EmbeddedHarness,
) -> None:
    topic, group = embedded_harness.topic(), embedded_harness.group()
    sent = [event(i, key=f"k{i % 5}") for i in range(40)]
    async with embedded_harness.broker() as broker:
        await broker.create_topic(topic, 2)
        await broker.publish_batch(topic, sent)
    async with embedded_harness.broker() as broker:  # a new store on the same file
        assert isinstance(broker, LogBroker) and await broker.partition_count(topic) == 2
        async with broker.subscribe(topic, group) as subscription:
            first = await take(subscription, 25)
    async with embedded_harness.broker() as broker, broker.subscribe(topic, group) as again:
        rest = await take(again, 15)
    got = [d.event for d in first + rest]
    assert sorted(e.id for e in got) == sorted(e.id for e in sent)
    assert {e.id: e for e in got} == {e.id: e for e in sent}


async def test_accepted_events_survive_a_killed_publisher(
    embedded_harness: EmbeddedHarness,
) -> None:
    topic, count = embedded_harness.topic(), 300
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.brokers.embedded_child", "publish-and-die",
        embedded_harness.url(), topic, str(count),
        cwd=ROOT, env=child_env(), stdout=asyncio.subprocess.PIPE,
    )
    output, _ = await asyncio.wait_for(child.communicate(), WAIT)
    assert child.returncode == -signal.SIGKILL
    accepted = output.decode().split()
    assert len(accepted) == count  # every publish returned before the kill
    async with embedded_harness.broker() as broker:
        async with broker.subscribe(topic, embedded_harness.group()) as subscription:
            received = {d.event.id for d in await take(subscription, count)}
    assert received == set(accepted)


# --- the store: wake-ups, fencing, bad rows -----------------------------------------------------
@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "store.db")
    await opened.open()
    yield opened
    await opened.close()


def foreign_connection(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection: a writer the store's process knows nothing about."""
    return sqlite3.connect(path, isolation_level=None)


async def test_wait_returns_at_once_when_an_append_raced_the_read(
    store: SqliteStore, tmp_path: Path
) -> None:
    await store.ensure_topic("t", 1)
    assert await store.read("t", 0, 0, 10) == []
    await store.append("t", [(0, None, event(0))])  # lands between the read and the wait
    await asyncio.wait_for(store.wait_for_data("t", timeout=120), WAIT)

    # the same race with a writer this process knows nothing about (another process)
    assert len(await store.read("t", 0, 0, 10)) == 1
    with contextlib.closing(foreign_connection(tmp_path / "store.db")) as foreign:
        tables.append_raw(foreign, "t", b"foreign bytes", partitions=1)
    await asyncio.wait_for(store.wait_for_data("t", timeout=120), WAIT)
    assert len(await store.read("t", 0, 0, 10)) == 2


async def test_a_waiting_fetcher_is_woken_by_an_append(store: SqliteStore) -> None:
    await store.ensure_topic("t", 2)
    assert await store.read("t", 1, 0, 10) == []
    waiter = asyncio.create_task(store.wait_for_data("t", timeout=120))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.append("t", [(0, "k", event(1, key="k"))])
    await asyncio.wait_for(waiter, WAIT)


async def test_positions_stay_contiguous_across_stores_and_large_batches(
    store: SqliteStore, tmp_path: Path
) -> None:
    # the second store's cached heads go stale whenever the first one appends
    other = SqliteStore(tmp_path / "store.db")
    await other.open()
    try:
        await store.ensure_topic("t", 2)
        await other.ensure_topic("t", 2)
        sent: list[CloudEvent] = []
        for writer, count in ((store, 3), (other, 2), (store, 2500), (other, 1), (store, 4)):
            batch = [event(len(sent) + i) for i in range(count)]
            await writer.append("t", [(0, None, e) for e in batch])
            sent += batch
        records = await store.read("t", 0, 0, 10_000)
    finally:
        await other.close()
    assert [r.position for r in records] == list(range(len(sent)))
    assert [r.event for r in records] == sent


async def test_commit_is_fenced_by_the_lease(store: SqliteStore, tmp_path: Path) -> None:
    # a second store on the file stands in for another process (its own connections)
    other = SqliteStore(tmp_path / "store.db")
    await other.open()
    try:
        assert await store.claim("g", "t", 0, "alice", ttl=0.3)
        assert not await other.claim("g", "t", 0, "bob", ttl=30)
        assert not await other.commit("g", "t", 0, 7, "bob")
        assert await store.commit("g", "t", 0, 5, "alice")
        assert await other.committed("g", "t", 0) == 5
        await asyncio.sleep(0.4)  # alice stops renewing: her lease runs out
        assert await other.claim("g", "t", 0, "bob", ttl=30)
        assert not await store.commit("g", "t", 0, 9, "alice")  # presumed dead: fenced off
        assert await other.commit("g", "t", 0, 6, "bob")
        assert await store.committed("g", "t", 0) == 6
        await store.release("g", "t", 0, "alice")  # not hers any more: no effect
        assert not await store.claim("g", "t", 0, "alice", ttl=30)
    finally:
        await other.close()


async def test_membership_expires_and_leave_releases_leases(store: SqliteStore) -> None:
    assert await store.heartbeat("g", "t", "b-member", ttl=30) == ["b-member"]
    assert await store.heartbeat("g", "t", "a-member", ttl=0.2) == ["a-member", "b-member"]
    assert await store.claim("g", "t", 1, "b-member", ttl=30)
    await asyncio.sleep(0.3)
    assert await store.heartbeat("g", "t", "b-member", ttl=30) == ["b-member"]
    await store.leave("g", "t", "b-member")
    assert await store.heartbeat("g", "t", "c-member", ttl=30) == ["c-member"]
    assert await store.claim("g", "t", 1, "c-member", ttl=30)


async def test_undecodable_rows_come_back_as_errors(store: SqliteStore, tmp_path: Path) -> None:
    await store.ensure_topic("t", 1)
    await store.append("t", [(0, None, event(0))])
    with contextlib.closing(foreign_connection(tmp_path / "store.db")) as foreign:
        tables.append_raw(foreign, "t", b"\x00\xffraw", partitions=1)
        foreign.execute(
            "INSERT INTO messages (topic, partition, position, headers, content_type, data)"
            " VALUES (1, 0, 2, 'id\x1fx\x1fsource', 'application/json', x'7b')"
        )
        foreign.execute(
            "INSERT INTO messages (topic, partition, position, headers, content_type, data)"
            " VALUES (1, 0, 3, 'specversion\x1f1.0\x1fid\x1fx\x1fsource\x1f/s\x1ftype\x1ft',"
            " 'application/json', x'7b')"
        )
    good, raw, odd, bad_json = await store.read("t", 0, 0, 10)
    assert good.event is not None and good.error is None
    assert raw.event is None and raw.raw == b"\x00\xffraw" and raw.error
    assert odd.event is None and odd.error and odd.raw == b"{"
    assert bad_json.event is None and bad_json.error and "JSON" in bad_json.error
    assert [r.position for r in (good, raw, odd, bad_json)] == [0, 1, 2, 3]


async def test_headers_holding_the_separator_round_trip(store: SqliteStore) -> None:
    odd = CloudEvent(type="t", source="/s", subject="a\x1fb", data="x",
                     extensions={"note": "\x1f\x1f"})
    await store.ensure_topic("t", 1)
    await store.append("t", [(0, None, odd)])
    [record] = await store.read("t", 0, 0, 10)
    assert record.event == odd


async def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    with pytest.raises(BrokerConfigError, match="schema version"):
        await SqliteStore(path).open()


# --- several processes on one file --------------------------------------------------------------
def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


@contextlib.contextmanager
def child_consumer(
    harness: EmbeddedHarness, topic: str, group: str, out: Path, hold: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    args = ["consume", harness.url(), topic, group, str(out)] + (["hold"] if hold else [])
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.brokers.embedded_child", *args], cwd=ROOT, env=child_env()
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


def received(out: Path) -> dict[str, float]:
    """id -> receipt time, from a child's output file."""
    lines = out.read_text().splitlines() if out.exists() else []
    return {
        parts[0]: float(parts[1])
        for parts in (line.split() for line in lines if line and not line.startswith("#"))
    }


async def until(condition: Callable[[], bool], what: str) -> None:
    await _until(condition, what, WAIT)


def is_ready(out: Path) -> bool:
    return out.exists() and "#ready" in out.read_text()


async def test_a_consumer_in_another_process_sees_events_within_milliseconds(
    embedded_harness: EmbeddedHarness, tmp_path: Path
) -> None:
    topic, group, out = embedded_harness.topic(), embedded_harness.group(), tmp_path / "c.txt"
    sent_at: dict[str, float] = {}
    async with embedded_harness.broker() as broker:
        await broker.create_topic(topic, 2)
        with child_consumer(embedded_harness, topic, group, out):
            await until(lambda: is_ready(out), "the child to subscribe")
            for i in range(40):
                one = event(i)
                sent_at[one.id] = time.time()  # the child's clock too, unlike loop.time()
                await broker.publish(topic, one)
                await asyncio.sleep(0.02)  # one at a time: each wakes an idle consumer
            await until(lambda: len(received(out)) >= len(sent_at), "every event in the child")
    got = received(out)
    assert set(got) == set(sent_at)
    latencies = sorted((got[i] - sent_at[i]) * 1000 for i in sent_at)
    print(
        f"\ncross-process publish->delivery latency over {len(latencies)} events: "
        f"median {statistics.median(latencies):.1f} ms, "
        f"p90 {latencies[int(len(latencies) * 0.9)]:.1f} ms, max {latencies[-1]:.1f} ms"
    )


def partition_of(key: str, partitions: int) -> int:
    return zlib.crc32(key.encode()) % partitions  # as LogBroker places keyed events


async def test_two_processes_in_one_group_split_the_partitions(
    embedded_harness: EmbeddedHarness, tmp_path: Path
) -> None:
    topic, group, out = embedded_harness.topic(), embedded_harness.group(), tmp_path / "c.txt"
    sent = [event(i, key=f"k{i}") for i in range(200)]
    mine: set[str] = set()
    async with embedded_harness.broker() as broker:
        await broker.create_topic(topic, 4)
        with child_consumer(embedded_harness, topic, group, out):
            await until(lambda: is_ready(out), "the child to subscribe")
            async with broker.subscribe(topic, group) as subscription:
                assert isinstance(subscription, LogSubscription)
                await until(lambda: len(subscription.assigned_partitions) == 2, "a 2-2 split")
                ours = set(subscription.assigned_partitions)
                await broker.publish_batch(topic, sent)

                async def drain() -> None:
                    async for delivery in subscription:
                        mine.add(delivery.event.id)
                        await delivery.ack()

                drainer = asyncio.create_task(drain())
                everything = {e.id for e in sent}
                await until(lambda: mine | set(received(out)) >= everything, "all events")
                drainer.cancel()
    theirs = set(received(out))
    assert mine and theirs, "one process received nothing: the partitions were not split"
    assert mine | theirs == {e.id for e in sent}
    by_id = {e.id: partition_of(e.partitionkey or "", 4) for e in sent}
    assert {by_id[i] for i in mine} <= ours
    assert {by_id[i] for i in theirs}.isdisjoint(ours)


async def test_a_killed_process_partitions_are_taken_over_and_redelivered(
    embedded_harness: EmbeddedHarness, tmp_path: Path
) -> None:
    topic, group, out = embedded_harness.topic(), embedded_harness.group(), tmp_path / "c.txt"
    sent = [event(i, key=f"k{i}") for i in range(120)]
    mine: list[str] = []
    async with embedded_harness.broker() as broker:
        await broker.create_topic(topic, 4)
        with child_consumer(embedded_harness, topic, group, out, hold=True) as child:
            await until(lambda: is_ready(out), "the child to subscribe")
            async with broker.subscribe(topic, group) as subscription:
                assert isinstance(subscription, LogSubscription)
                await until(lambda: len(subscription.assigned_partitions) == 2, "a 2-2 split")
                ours = set(subscription.assigned_partitions)
                theirs = [e.id for e in sent if partition_of(e.partitionkey or "", 4) not in ours]

                async def drain() -> None:
                    async for delivery in subscription:
                        mine.append(delivery.event.id)
                        await delivery.ack()

                drainer = asyncio.create_task(drain())
                await broker.publish_batch(topic, sent)
                # the child holds every event of its partitions, acknowledging none
                await until(lambda: len(received(out)) == len(theirs), "the child's share")
                child.send_signal(signal.SIGKILL)
                child.wait(10)
                await until(lambda: len(mine) == len(sent), "the survivor to take over")
                await asyncio.sleep(0.3)  # anything beyond would be a duplicate
                drainer.cancel()
                assert subscription.assigned_partitions == [0, 1, 2, 3]
    held = set(received(out))
    redelivered = held & set(mine)
    print(f"\nthe killed child held {len(held)} unacked events; {len(redelivered)} redelivered")
    assert held == set(theirs)
    assert redelivered == held
    assert sorted(mine) == sorted(e.id for e in sent)


async def test_a_waiter_that_gives_up_after_the_hub_is_released_does_not_park_its_watcher(
    tmp_path: Path,
) -> None:
    """A fetch that times out after the store closed deactivates the hub's watcher: the
    watcher must still see its stop, or the close's join of the thread never returns (a
    test run once hung in the event loop's teardown on that). The thread is started last,
    so it reaches its wait after the stop and the give-up, the order that hung."""
    path = tmp_path / "broker.db"
    sqlite3.connect(path).close()
    watcher = wakeup.Watcher(path, 0.01, 1.0, asyncio.get_running_loop(), lambda seqs: None)
    watcher.activate()  # a fetcher waits
    thread = watcher.stop()  # the store closes
    watcher.deactivate()  # the fetcher gives up
    watcher.start()
    await asyncio.to_thread(thread.join, 5)
    assert not thread.is_alive()
