"""The store's operations as plain synchronous SQL on one connection.

They run on the store's worker threads (never on the event loop). Every write that reads
before it writes is one ``BEGIN IMMEDIATE`` transaction, so the checks it makes (who holds a
lease, which position is next) cannot be invalidated by another process before it commits;
the common append is a single INSERT statement, atomic by itself. Times are ``time.time()``:
monotonic clocks are not comparable between processes.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from tether.brokers.base import BrokerError
from tether.brokers.embedded.rows import EncodedRow, StoredRow
from tether.brokers.embedded.schema import immediate

#: (topic id, partition count)
TopicInfo = tuple[int, int]


class UnknownTopicError(BrokerError):
    """A read or append named a topic that was never created in this file."""


# --- topics and messages ----------------------------------------------------------------------
def find_topic(connection: sqlite3.Connection, name: str) -> TopicInfo | None:
    row = connection.execute("SELECT id, partitions FROM topics WHERE name = ?", (name,))
    found = row.fetchone()
    return None if found is None else (found[0], found[1])


def ensure_topic(connection: sqlite3.Connection, name: str, partitions: int) -> TopicInfo:
    found = find_topic(connection, name)
    if found is not None:
        return found
    with immediate(connection):
        connection.execute(
            "INSERT OR IGNORE INTO topics (name, partitions) VALUES (?, ?)", (name, partitions)
        )
        created = find_topic(connection, name)
    assert created is not None
    return created


#: (topic id, partition) -> next position; the writer's cache, checked by the primary key
Heads = dict[tuple[int, int], int]

_COLUMNS = "topic, partition, position, key, headers, content_type, data"
#: statement sizes in rows: a batch is padded with NULL rows up to the next size, so only
#: these few statements are ever prepared and they stay in the statement cache
_SIZES = tuple(2**n for n in range(11))
MAX_STATEMENT_ROWS = _SIZES[-1]
_INSERTS = {
    size: f"INSERT INTO messages ({_COLUMNS}) SELECT * FROM (VALUES "
    + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * size)
    + ") WHERE column1 IS NOT NULL"
    for size in _SIZES
}
_PADDING = (None,) * 7


#: one topic's rows of an append: (topic id, rows)
TopicRows = tuple[int, Sequence[EncodedRow]]


def append(
    connection: sqlite3.Connection, batches: Sequence[TopicRows], heads: Heads
) -> dict[int, int]:
    """Insert the rows (of one or several topics, all or none) at the end of their
    partitions; returns each topic's new ``seq``.

    The Python sqlite3 module releases the GIL around every step and must take it back
    after each; with the event loop busy that costs up to a switch interval (5 ms) per step,
    so a batch is one INSERT statement rather than an executemany of one step per row, and
    concurrent publishes to several topics share that statement (group commit).
    Positions come from ``heads``; when another process appended meanwhile, the primary key
    refuses the statement (all of it) and the batch is redone under the write lock.
    """
    rows = [(topic, row) for topic, topic_rows in batches for row in topic_rows]
    slots = {(topic, row[0]) for topic, row in rows}
    topics = sorted({topic for topic, _ in batches})
    if len(rows) <= MAX_STATEMENT_ROWS and slots <= heads.keys():
        params, moved = _number(rows, heads)
        try:
            _insert(connection, params, len(rows))  # one statement: atomic on its own
        except sqlite3.IntegrityError:
            pass  # stale heads: fall through to the locked path
        else:
            heads.update(moved)
            return _seqs(connection, topics)
    fresh: Heads = {}
    with immediate(connection):
        for topic, partition in slots:
            fresh[(topic, partition)] = _next_position(connection, topic, partition)
        for start in range(0, len(rows), MAX_STATEMENT_ROWS):
            chunk = rows[start:start + MAX_STATEMENT_ROWS]
            params, moved = _number(chunk, fresh)
            _insert(connection, params, len(chunk))
            fresh.update(moved)
    heads.update(fresh)  # only once committed: a rolled-back batch must not move them
    return _seqs(connection, topics)


def _number(
    rows: Sequence[tuple[int, EncodedRow]], heads: Heads
) -> tuple[list[object], Heads]:
    """Flat statement parameters with each row's position, and the heads after them."""
    moved: Heads = {}
    params: list[object] = []
    for topic, (partition, key, headers, content_type, data) in rows:
        slot = (topic, partition)
        position = moved.get(slot)
        if position is None:
            position = heads[slot]
        moved[slot] = position + 1
        params += (topic, partition, position, key, headers, content_type, data)
    return params, moved


def _insert(connection: sqlite3.Connection, params: list[object], count: int) -> None:
    size = next(size for size in _SIZES if size >= count)
    params += _PADDING * (size - count)
    connection.execute(_INSERTS[size], params)


def _next_position(connection: sqlite3.Connection, topic: int, partition: int) -> int:
    found = connection.execute(
        "SELECT max(position) FROM messages WHERE topic = ? AND partition = ?", (topic, partition)
    ).fetchone()[0]
    return 0 if found is None else int(found) + 1


def _seqs(connection: sqlite3.Connection, topics: Sequence[int]) -> dict[int, int]:
    if len(topics) == 1:
        found = connection.execute("SELECT id, seq FROM topics WHERE id = ?", (topics[0],))
    else:
        marks = ",".join("?" * len(topics))
        found = connection.execute(f"SELECT id, seq FROM topics WHERE id IN ({marks})", topics)
    return {topic: seq for topic, seq in found.fetchall()}


def read(
    connection: sqlite3.Connection, topic: int, partition: int, offset: int, limit: int
) -> tuple[int, list[StoredRow]]:
    """The topic's ``seq`` and up to ``limit`` rows from ``offset`` on. The seq is read
    first, so it never counts an append the rows miss (a later wait then returns at once)."""
    seq: int = connection.execute("SELECT seq FROM topics WHERE id = ?", (topic,)).fetchone()[0]
    rows: list[StoredRow] = connection.execute(
        "SELECT position, key, headers, content_type, data FROM messages"
        " WHERE topic = ? AND partition = ? AND position >= ? ORDER BY position LIMIT ?",
        (topic, partition, offset, limit),
    ).fetchall()
    return seq, rows


def append_raw(connection: sqlite3.Connection, name: str, payload: bytes, partitions: int) -> int:
    """Tests: put bytes that are not a CloudEvent on the topic's last partition (created with
    ``partitions`` if missing), as a foreign writer might. Returns the new ``seq``."""
    topic, count = ensure_topic(connection, name, partitions)
    return append(connection, [(topic, [(count - 1, None, None, None, payload)])], {})[topic]


# --- consumer groups --------------------------------------------------------------------------
def committed(
    connection: sqlite3.Connection, group: str, topic: str, partition: int
) -> int | None:
    found = connection.execute(
        "SELECT position FROM offsets WHERE grp = ? AND topic = ? AND partition = ?",
        (group, topic, partition),
    ).fetchone()
    return None if found is None else int(found[0])


def end_offset(connection: sqlite3.Connection, topic: int, partition: int) -> int:
    return _next_position(connection, topic, partition)


def commit(
    connection: sqlite3.Connection, group: str, topic: str, partition: int, offset: int,
    member: str,
) -> bool:
    """Fenced: written only while ``member`` holds the lease, checked in the same transaction."""
    with immediate(connection):
        if _lease_holder(connection, group, topic, partition) != member:
            return False
        connection.execute(
            "INSERT INTO offsets (grp, topic, partition, position) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (grp, topic, partition) DO UPDATE SET position = excluded.position",
            (group, topic, partition, offset),
        )
    return True


def heartbeat(
    connection: sqlite3.Connection, group: str, topic: str, member: str, ttl: float
) -> list[str]:
    with immediate(connection):
        now = time.time()
        connection.execute(
            "INSERT INTO members (grp, topic, member, expires) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (grp, topic, member) DO UPDATE SET expires = excluded.expires",
            (group, topic, member, now + ttl),
        )
        connection.execute(
            "DELETE FROM members WHERE grp = ? AND topic = ? AND expires < ?", (group, topic, now)
        )
        rows = connection.execute(
            "SELECT member FROM members WHERE grp = ? AND topic = ? ORDER BY member",
            (group, topic),
        ).fetchall()
    return [row[0] for row in rows]


def live_members(connection: sqlite3.Connection, group: str, topic: str) -> int:
    row = connection.execute(
        "SELECT COUNT(*) FROM members WHERE grp = ? AND topic = ? AND expires >= ?",
        (group, topic, time.time()),
    ).fetchone()
    return int(row[0])


def leave(connection: sqlite3.Connection, group: str, topic: str, member: str) -> None:
    with immediate(connection):
        connection.execute(
            "DELETE FROM members WHERE grp = ? AND topic = ? AND member = ?",
            (group, topic, member),
        )
        connection.execute(
            "DELETE FROM leases WHERE grp = ? AND topic = ? AND member = ?",
            (group, topic, member),
        )


def claim(
    connection: sqlite3.Connection, group: str, topic: str, partition: int, member: str,
    ttl: float,
) -> bool:
    with immediate(connection):
        now = time.time()
        held = connection.execute(
            "SELECT member, expires FROM leases WHERE grp = ? AND topic = ? AND partition = ?",
            (group, topic, partition),
        ).fetchone()
        if held is not None and held[0] != member and held[1] > now:
            return False
        connection.execute(
            "INSERT INTO leases (grp, topic, partition, member, expires) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (grp, topic, partition)"
            " DO UPDATE SET member = excluded.member, expires = excluded.expires",
            (group, topic, partition, member, now + ttl),
        )
    return True


def release(
    connection: sqlite3.Connection, group: str, topic: str, partition: int, member: str
) -> None:
    with immediate(connection):
        connection.execute(
            "DELETE FROM leases WHERE grp = ? AND topic = ? AND partition = ? AND member = ?",
            (group, topic, partition, member),
        )


def _lease_holder(
    connection: sqlite3.Connection, group: str, topic: str, partition: int
) -> str | None:
    found = connection.execute(
        "SELECT member FROM leases WHERE grp = ? AND topic = ? AND partition = ?",
        (group, topic, partition),
    ).fetchone()
    return None if found is None else str(found[0])
