"""Waking fetchers that wait for a topic: at once for appends made in this process, within
a few milliseconds for appends made by other processes.

Every append bumps the topic's ``seq`` column in the same transaction. A :class:`Hub` (one
per database file and event loop, shared by every store opened on that file) keeps the
highest ``seq`` seen per topic and wakes the waiters of a topic when it grows. Appends made
through this process report their new ``seq`` directly; a :class:`Watcher` thread notices
everybody else's by polling ``PRAGMA data_version`` (a shared-memory read, no disk I/O) every
few milliseconds, and only while someone is waiting.

A fetcher reads, finds nothing and then waits. If an append lands between the two, the wait
must not sleep: each read records the ``seq`` it saw (per task, in a context variable) and a
wait returns at once when the hub already knows a higher one.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

#: (hub, topic id, seq) seen by the current task's last read
_last_read: contextvars.ContextVar[tuple[Hub, int, int] | None] = contextvars.ContextVar(
    "tether_embedded_last_read", default=None
)


class Hub:
    """Highest known ``seq`` per topic of one file, and the fetchers waiting for more."""

    def __init__(
        self, path: Path, loop: asyncio.AbstractEventLoop, interval: float, busy_timeout: float
    ) -> None:
        self.path = path
        self.loop = loop
        self.users = 0
        self._known: dict[int, int] = {}
        self._waiters: dict[int, list[tuple[int, asyncio.Future[None]]]] = {}
        self._waiting = 0
        self._watcher = Watcher(path, interval, busy_timeout, loop, self._observe_many)

    def observe(self, topic: int, seq: int) -> None:
        """The topic's ``seq`` is at least ``seq``: wake whoever waits for less."""
        if seq <= self._known.get(topic, 0):
            return
        self._known[topic] = seq
        for mark, future in self._waiters.get(topic, ()):
            if mark < seq and not future.done():
                future.set_result(None)

    def note_read(self, topic: int, seq: int) -> None:
        """The current task just read ``topic`` as of ``seq``."""
        _last_read.set((self, topic, seq))
        self.observe(topic, seq)

    async def wait(self, topic: int, timeout: float) -> None:
        last = _last_read.get()
        if last is not None and last[0] is self and last[1] == topic:
            mark = last[2]
        else:  # no read by this task to compare with: wait for the next append
            mark = self._known.get(topic, 0)
        if self._known.get(topic, 0) > mark:
            return  # appended since this task's read
        entry = (mark, self.loop.create_future())
        waiters = self._waiters.setdefault(topic, [])
        waiters.append(entry)
        self._waiting += 1
        if self._waiting == 1:
            self._watcher.activate()
        try:
            # not asyncio.wait_for: on Python 3.11 it swallows a cancel that arrives with the
            # wakeup, and a cancelled fetch loop would go on
            async with asyncio.timeout(timeout):
                await entry[1]
        except TimeoutError:
            pass
        finally:
            waiters.remove(entry)
            if not waiters:
                del self._waiters[topic]
            self._waiting -= 1
            if self._waiting == 0:
                self._watcher.deactivate()

    def start(self) -> None:
        self._watcher.start()

    def stop(self) -> threading.Thread:
        return self._watcher.stop()

    def _observe_many(self, seqs: dict[int, int]) -> None:
        for topic, seq in seqs.items():
            self.observe(topic, seq)


class Watcher:
    """A daemon thread with its own connection that reports changed topic ``seq`` values."""

    def __init__(
        self,
        path: Path,
        interval: float,
        busy_timeout: float,
        loop: asyncio.AbstractEventLoop,
        report: Callable[[dict[int, int]], None],
    ) -> None:
        self._path = path
        self._interval = interval
        self._busy_timeout = busy_timeout
        self._loop = loop
        self._report = report
        self._active = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"tether-watch:{path.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def activate(self) -> None:
        self._active.set()

    def deactivate(self) -> None:
        # after stop() the flag must stay set: a waiter that gives up after the hub was
        # released would otherwise park the thread in _active.wait() for good, and the
        # release's join with it (both run on the loop's thread, so this check is safe)
        if not self._stopping.is_set():
            self._active.clear()

    def stop(self) -> threading.Thread:
        """Ask the thread to end; returns it so the caller can join it off the loop."""
        self._stopping.set()
        self._active.set()
        return self._thread

    def _run(self) -> None:
        try:
            connection = sqlite3.connect(self._path, timeout=self._busy_timeout,
                                         isolation_level=None)
        except sqlite3.Error:  # waiters still wake at their poll_interval
            log.exception("cannot watch %s for other processes' appends", self._path)
            return
        try:
            self._poll(connection)
        finally:
            connection.close()

    def _poll(self, connection: sqlite3.Connection) -> None:
        version = None
        seqs: dict[int, int] = {}
        while True:
            self._active.wait()
            if self._stopping.is_set():
                return
            try:
                current = connection.execute("PRAGMA data_version").fetchone()[0]
                if current != version:
                    version = current
                    changed = {}
                    for topic, seq in connection.execute("SELECT id, seq FROM topics"):
                        if seqs.get(topic) != seq:
                            seqs[topic] = changed[topic] = seq
                    if changed:
                        self._loop.call_soon_threadsafe(self._report, changed)
            except sqlite3.Error:  # e.g. busy during another process's recovery: next tick
                log.debug("watcher poll of %s failed", self._path, exc_info=True)
            except RuntimeError:  # the event loop is closed: nobody is left to wake
                return
            if self._stopping.wait(self._interval):
                return


_hubs: dict[tuple[Path, asyncio.AbstractEventLoop], Hub] = {}


def acquire_hub(path: Path, interval: float, busy_timeout: float) -> Hub:
    """The hub of ``path`` for the running loop (created and started on first use)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get((path, loop))
    if hub is None:
        hub = _hubs[(path, loop)] = Hub(path, loop, interval, busy_timeout)
        hub.start()
    hub.users += 1
    return hub


async def release_hub(hub: Hub) -> None:
    hub.users -= 1
    if hub.users > 0:
        return
    _hubs.pop((hub.path, hub.loop), None)
    thread = hub.stop()
    await asyncio.to_thread(thread.join)
