"""Backends for the workflow runtime tests: a broker URL and a state store per backend, on
the session's real servers (tests/servers.py). Each runtime gets its own namespace (topics,
groups, keys) and its own state store, so tests sharing a server never meet."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tether.platform.components import Component

BACKENDS = ("embedded", "redis", "kafka", "postgresql")
# tansu completes a group join in about session_timeout / 2: keep it short
KAFKA_OPTIONS = "session_timeout_ms=6000&heartbeat_interval_ms=1000"
# a killed member's partitions move within a few seconds
EMBEDDED_OPTIONS = "session_timeout=3&heartbeat_interval=0.3"
REDIS_OPTIONS = "session_timeout=3&heartbeat_interval=0.5&block=0.1"


@dataclass(frozen=True)
class Backend:
    name: str
    broker_url: str
    state: Component
    namespace: str


def make_backend(name: str, request: pytest.FixtureRequest, folder: Path) -> Backend:
    tag = uuid.uuid4().hex[:10]
    namespace = f"wf-{tag}"
    sqlite = Component(name=f"wfstate-{tag}", type="state.sqlite",
                       metadata={"connectionString": str(folder / "state.db")})
    if name == "embedded":
        return Backend(name, f"embedded://{folder}/broker.db?{EMBEDDED_OPTIONS}", sqlite, namespace)
    if name == "redis":
        address = request.getfixturevalue("redis_address")
        state = Component(name=f"wfstate-{tag}", type="state.redis",
                          metadata={"redisHost": address})
        url = f"redis://{address}/0?namespace={namespace}&{REDIS_OPTIONS}"
        return Backend(name, url, state, namespace)
    if name == "kafka":
        address = request.getfixturevalue("kafka_address")
        return Backend(name, f"kafka://{address}?{KAFKA_OPTIONS}", sqlite, namespace)
    if name == "postgresql":  # the embedded broker with history in PostgreSQL
        dsn = request.getfixturevalue("postgres_dsn")
        state = Component(name=f"wfstate-{tag}", type="state.postgresql",
                          metadata={"connectionString": dsn,
                                    "tableName": f"wf_{tag}",
                                    "metadataTableName": f"wf_{tag}_meta"})
        request.addfinalizer(lambda: _drop_tables(dsn, tag))
        return Backend(name, f"embedded://{folder}/broker.db?{EMBEDDED_OPTIONS}", state,
                       namespace)
    raise ValueError(name)


def _drop_tables(dsn: str, tag: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for table in (f"wf_{tag}", f"wf_{tag}_meta", f"wf_{tag}_outbox"):
            conn.execute(f'DROP TABLE IF EXISTS "{table}"')
