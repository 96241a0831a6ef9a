"""The SQLite file: connection settings and tables.

Everything lives in one file so a copy of it is a consistent backup of the broker: the log
(``topics``, ``messages``) and the consumer-group state (``offsets``, ``members``, ``leases``).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from tether.brokers.base import BrokerConfigError

#: bumped when the tables change incompatibly; a file from a newer Tether is refused
SCHEMA_VERSION = 1

SYNCHRONOUS_LEVELS = ("OFF", "NORMAL", "FULL", "EXTRA")

_STATEMENTS = (
    """
CREATE TABLE IF NOT EXISTS topics (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    partitions  INTEGER NOT NULL,
    -- bumped by every append: how other processes notice new data cheaply
    seq         INTEGER NOT NULL DEFAULT 0
)
""",
    """
CREATE TABLE IF NOT EXISTS messages (
    topic         INTEGER NOT NULL,
    partition     INTEGER NOT NULL,
    position      INTEGER NOT NULL,
    key           TEXT,
    headers       TEXT,     -- NULL for raw bytes that are not a CloudEvent
    content_type  TEXT,
    data          BLOB,
    PRIMARY KEY (topic, partition, position)
) WITHOUT ROWID
""",
    """
-- the seq bump rides in the insert statement itself: atomic, and no extra round trip
CREATE TRIGGER IF NOT EXISTS messages_seq AFTER INSERT ON messages BEGIN
    UPDATE topics SET seq = seq + 1 WHERE id = NEW.topic;
END
""",
    """
CREATE TABLE IF NOT EXISTS offsets (
    grp        TEXT NOT NULL,
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID
""",
    """
CREATE TABLE IF NOT EXISTS members (
    grp      TEXT NOT NULL,
    topic    TEXT NOT NULL,
    member   TEXT NOT NULL,
    expires  REAL NOT NULL,   -- time.time(): comparable across processes
    PRIMARY KEY (grp, topic, member)
) WITHOUT ROWID
""",
    """
CREATE TABLE IF NOT EXISTS leases (
    grp        TEXT NOT NULL,
    topic      TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    member     TEXT NOT NULL,
    expires    REAL NOT NULL,
    PRIMARY KEY (grp, topic, partition)
) WITHOUT ROWID
""",
)


def connect(path: Path, synchronous: str, busy_timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit, see :func:`immediate`),
    in WAL mode so readers never block the writer and the writer never blocks readers."""
    connection = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=True
    )
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise BrokerConfigError(f"{path}: SQLite refused WAL mode (got {mode!r})")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        # after a checkpoint, shrink the WAL file back instead of keeping its peak size
        connection.execute("PRAGMA journal_size_limit = 67108864")
    except BaseException:
        connection.close()
        raise
    return connection


def create_tables(connection: sqlite3.Connection) -> None:
    with immediate(connection):
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BrokerConfigError(
                f"broker file has schema version {version}; this Tether knows {SCHEMA_VERSION}"
            )
        # one statement at a time: executescript() would commit the open transaction
        for statement in _STATEMENTS:
            connection.execute(statement)
        if version < SCHEMA_VERSION:
            connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextlib.contextmanager
def immediate(connection: sqlite3.Connection) -> Iterator[None]:
    """A write transaction that takes the write lock up front (waiting up to busy_timeout).

    A deferred transaction that reads and then writes can fail at once with SQLITE_BUSY when
    another process committed in between; taking the lock first makes every read inside the
    transaction current, which the lease and commit checks rely on.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
