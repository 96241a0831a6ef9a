"""``lock.sqlite``: the embedded lock, a table in a SQLite file shared by the processes of
one machine.

Locking is one upsert that takes the row only when it is absent or expired, so two
processes can never both succeed; unlocking runs in a ``BEGIN IMMEDIATE`` transaction
(SQLite's write lock) so the owner check and the delete cannot be split. Expiry is wall
clock time (``time.time()``) stored with the row: it works across processes and restarts,
and a holder that dies simply lets its row expire. WAL mode lets readers and one writer
proceed together; ``busy_timeout`` makes contending writers wait instead of failing.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from tether.platform.lock.store import LockStore, LockStoreError, UnlockStatus

DEFAULT_TABLE = "tether_locks"
DEFAULT_BUSY_TIMEOUT = 30.0
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
T = TypeVar("T")


class SqliteLockStore(LockStore):
    def __init__(
        self,
        path: str | Path,
        *,
        table: str = DEFAULT_TABLE,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not _IDENTIFIER.match(table):
            raise ValueError(f"table name {table!r} must be a plain SQL identifier")
        self.path = Path(path)
        self.table = table
        self.busy_timeout = busy_timeout
        self._clock = clock
        self._db: sqlite3.Connection | None = None
        # one connection per store; sqlite3 connections must not be used concurrently
        self._mutex = threading.Lock()

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self._open)
        except (OSError, sqlite3.Error) as exc:  # a start error naming the file, no traceback
            raise LockStoreError(f"cannot open the SQLite lock file {self.path}: {exc}") from exc

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # autocommit (isolation_level=None): each statement commits unless we BEGIN
        db = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table} ("
                " key TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at REAL NOT NULL)"
            )
            # rows of locks nobody took again since they expired
            db.execute(f"DELETE FROM {self.table} WHERE expires_at <= ?", (self._clock(),))
        except sqlite3.Error:
            db.close()
            raise
        self._db = db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def locked() -> T:
            if self._db is None:
                raise LockStoreError(f"lock store {self.path} is not open (start() first)")
            with self._mutex:
                return work(self._db)

        try:
            return await asyncio.to_thread(locked)
        except sqlite3.Error as exc:
            raise LockStoreError(f"sqlite {self.path}: {exc}") from exc

    async def try_lock(self, key: str, owner: str, expiry_seconds: int) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            now = self._clock()
            cursor = db.execute(
                f"INSERT INTO {self.table} (key, owner, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE"
                " SET owner = excluded.owner, expires_at = excluded.expires_at"
                f" WHERE {self.table}.expires_at <= ?",
                (key, owner, now + expiry_seconds, now),
            )
            return cursor.rowcount == 1

        return await self._run(work)

    async def unlock(self, key: str, owner: str) -> UnlockStatus:
        def work(db: sqlite3.Connection) -> UnlockStatus:
            db.execute("BEGIN IMMEDIATE")
            try:
                now = self._clock()
                row = db.execute(
                    f"SELECT owner, expires_at FROM {self.table} WHERE key = ?", (key,)
                ).fetchone()
                if row is None:
                    status = UnlockStatus.LOCK_DOES_NOT_EXIST
                elif row[1] <= now:
                    db.execute(f"DELETE FROM {self.table} WHERE key = ?", (key,))
                    status = UnlockStatus.LOCK_DOES_NOT_EXIST
                elif row[0] != owner:
                    status = UnlockStatus.LOCK_BELONGS_TO_OTHERS
                else:
                    db.execute(f"DELETE FROM {self.table} WHERE key = ?", (key,))
                    status = UnlockStatus.SUCCESS
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return status

        return await self._run(work)

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            # in a thread: the mutex may be held by a call waiting on SQLite's busy timeout
            await asyncio.to_thread(self._close, db)

    def _close(self, db: sqlite3.Connection) -> None:
        with self._mutex:
            db.close()
