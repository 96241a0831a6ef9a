from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.brokers.harness import Harness
from tether.brokers.embedded import parse_url, schema, tables

#: short group timings so a killed process's partitions move within a few seconds
TIMINGS = "session_timeout=3&heartbeat_interval=0.3"


class EmbeddedHarness(Harness):
    name = "embedded"

    def __init__(self, path: Path) -> None:
        self.path = path

    def url(self) -> str:
        return f"embedded://{self.path}?{TIMINGS}"

    async def inject_raw(self, topic: str, payload: bytes) -> None:
        await asyncio.to_thread(self._write_raw, topic, payload)

    def _write_raw(self, topic: str, payload: bytes) -> None:
        # straight into the file with the sqlite3 module, as a foreign writer would
        partitions = parse_url(self.url()).settings.default_partitions
        connection = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        try:
            schema.create_tables(connection)
            tables.append_raw(connection, topic, payload, partitions)
        finally:
            connection.close()


@pytest.fixture
def embedded_harness(tmp_path: Path) -> Iterator[EmbeddedHarness]:
    yield EmbeddedHarness(tmp_path / "broker.db")
