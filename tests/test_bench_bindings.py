"""bench/bindings.py stays runnable: every source and output binding at tiny sizes, the
table it prints, and nothing of the run left on the shared servers.

The figures themselves are not checked (they depend on the machine); only that each row
measured Tether against the raw client in the same run and printed the ratio.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
from pathlib import Path

from tests.bindings.conftest import RABBITMQ_URL
from tests.servers import unavailable

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "bindings.py"
TINY = ["--messages", "60", "--window", "20", "--seconds", "0.3", "--workers", "3",
        "--timeout", "120"]
RATE = r"[\d,]+/s"


def _reachable(port: int, what: str) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), 2).close()
    except OSError as exc:
        unavailable(f"{what} is not reachable on 127.0.0.1:{port}: {exc}")


def _queues_left(tag: str) -> list[str]:
    """The run's queues still on RabbitMQ (a passive declare fails for a deleted one)."""
    import aio_pika

    async def check() -> list[str]:
        left = []
        async with await aio_pika.connect(RABBITMQ_URL) as connection:
            for name in (f"bench-bindings-{tag}", f"bench-bindings-raw-{tag}",
                         f"bench-out-{tag}", f"bench-out-raw-{tag}"):
                channel = await connection.channel()
                try:
                    await channel.declare_queue(name, passive=True)
                    left.append(name)
                except aio_pika.exceptions.ChannelClosed:
                    pass
        return left

    return asyncio.run(check())


def test_every_source_and_output_prints_its_ratio_and_cleans_up(
    kafka_address: str, redis_address: str, postgres_dsn: str,
) -> None:
    _reachable(5672, "RabbitMQ")
    _reachable(1883, "Mosquitto")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--kafka", kafka_address, "--redis",
         redis_address, "--postgres", postgres_dsn, "--rabbitmq", RABBITMQ_URL],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    lines = result.stdout.splitlines()
    assert lines[1].startswith("load average before:"), out
    assert lines[-1].startswith("load average after:"), out
    for source in ("rabbitmq", "mqtt", "kafka"):
        row = [line for line in lines if line.startswith(f"{source} ") and "/s" in line]
        assert len(row) == 1, out
        assert re.match(rf"{source}\s+{RATE}\s+{RATE}\s+\d+%", row[0]), row[0]
    for kind in ("rabbitmq", "redis", "postgresql"):
        row = [line for line in lines if line.startswith(f"{kind} ") and "/s" not in line
               and "%" in line]
        assert len(row) == 1, out
        # raw ops/s p50 p99, tether ops/s p50 p99, ratio
        assert re.match(rf"{kind}\s+[\d,]+(\s+\d+\.\d\d){{2}}\s+[\d,]+(\s+\d+\.\d\d){{2}}"
                        rf"\s+\d+%", row[0]), row[0]
    tag = re.search(r"run tag (\w+)", lines[0])
    assert tag is not None, lines[0]
    assert _queues_left(tag.group(1)) == []
    import psycopg

    with psycopg.connect(postgres_dsn) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE %s",
                              (f"bench_bindings_%{tag.group(1)}",)).fetchone()
    assert tables == (0,)
