"""Processes the tests leave behind, read from /proc (Linux; psutil is not a dependency).

The test session makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``), so a process
whose parent dies (an app orphaned by a SIGKILLed ``tether run``) becomes the session's child
instead of init's, and :func:`leftovers` finds it at the end of the run (tests/conftest.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Process:
    pid: int
    command: str


def become_subreaper() -> bool:
    """Adopt this process's orphaned descendants; False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid), or None once the process is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # "pid (command) state ppid ...": the command may hold spaces and parentheses
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Running, as opposed to exited (a zombie waiting to be reaped counts as exited)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def _command(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return "?"
    parts = (part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return " ".join(parts).replace("\n", "\\n")


def children(parent: int) -> list[Process]:
    """The live children of ``parent``; the zombies among them are reaped."""
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None or stat[1] != parent:
            continue
        if stat[0] in ("Z", "X"):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            continue
        found.append(Process(pid, _command(pid)))
    return found


def leftovers(parent: int, settle: float) -> list[Process]:
    """``parent``'s children still running after up to ``settle`` seconds (a process
    stopped by a fixture a moment ago may still be exiting), killed."""
    deadline = time.monotonic() + settle
    while (found := children(parent)) and time.monotonic() < deadline:
        time.sleep(0.1)
    reported = list(found)
    while found:
        for process in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        time.sleep(0.2)
        # a killed process's own children come to the subreaper next
        found = [p for p in children(parent) if p not in reported]
        reported += found
    return reported


def connection_owner(server_port: int, client_port: int, candidates: list[int]) -> int | None:
    """Which of ``candidates`` holds the server end of the TCP connection between
    ``server_port`` and ``client_port`` on this machine (IPv4), None if none does."""
    inode = None
    for line in (PROC / "net" / "tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (int(local.split(":")[1], 16) == server_port
                and int(remote.split(":")[1], 16) == client_port):
            inode = fields[9]
            break
    if inode is None:
        return None
    link = f"socket:[{inode}]"
    for pid in candidates:
        with contextlib.suppress(OSError):
            for fd in (PROC / str(pid) / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) == link:
                        return pid
    return None
