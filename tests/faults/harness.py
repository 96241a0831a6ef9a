"""What the fault tests share: a real ``tether run`` sidecar with a subscriber app, a steady
load of publishes (and state saves) through its HTTP API, and the counts.

The app is tests/platform/scaling_app.py with no work delay: it writes every event's ``n``
to handled.txt as it answers SUCCESS. The load is one caller publishing ``{"n": i}`` with
i = 0, 1, 2, ... one call after the other (and saving state key ``s<i>`` = i after each,
when told to); every call is recorded with the phase of the test it started in and what
came back: the status (and Dapr's error code), or the exception when there was no answer.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tether.cli.run import free_port

WAIT = 120.0  # a ceiling for things that should happen, never an assertion about speed
CALL_TIMEOUT = 90.0  # longer than any timeout of the sidecar's, so callers see its answer
PACE = 0.01  # seconds between two calls of the load: a steady stream, not a flood
TOPIC = "orders"
APP = Path(__file__).parents[1] / "platform" / "scaling_app.py"


def lines(path: Path) -> list[str]:
    """Whole lines only: an app killed mid-write may leave a partial last line."""
    if not path.exists():
        return []
    text = path.read_text()
    return text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]


def until(what: str, check: Callable[[], Any], alive: Callable[[], None] = lambda: None) -> Any:
    """Poll ``check`` until it is truthy; fail after WAIT (or as soon as ``alive`` raises)."""
    deadline = time.monotonic() + WAIT
    while True:
        alive()
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {WAIT:g}s waiting for {what}")
        time.sleep(0.1)


class Sidecar:
    """``tether run --app-id faults`` with the subscriber app, in ``cwd``; the ports are
    kept so that a restart comes back at the same address."""

    def __init__(self, cwd: Path, resources: Path | None) -> None:
        cwd.mkdir(exist_ok=True)
        self.cwd = cwd
        self.resources = resources
        self.http_port = free_port()
        self.app_port = free_port()
        self.log = cwd / "tether.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        resources = ["--resources-path", str(self.resources)] if self.resources else []
        with self.log.open("a") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tether.cli.main", "run", "--app-id", "faults",
                 "--app-port", str(self.app_port), "--http-port", str(self.http_port),
                 "--app-port-timeout", str(WAIT), *resources,
                 "--", sys.executable, str(APP), TOPIC, "0"],
                cwd=self.cwd, stdout=subprocess.DEVNULL, stderr=log,
            )
        self.starts += 1
        until("the sidecar's subscription", self._subscribed, self.alive)

    def _subscribed(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v1.0/metadata", timeout=5) as response:
                return bool(json.load(response)["subscriptions"])
        except OSError:
            return False

    def alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"tether run exited ({self.proc.returncode}):\n"
                                 + self.log.read_text()[-5000:])

    def recovered_without_restart(self) -> bool:
        """The first sidecar process is still the one serving."""
        return self.starts == 1 and self.proc is not None and self.proc.poll() is None

    def handled(self) -> collections.Counter[int]:
        """How many times the app handled each event (more than once: a redelivery)."""
        return collections.Counter(int(n) for n in lines(self.cwd / "handled.txt"))

    def log_lines(self) -> int:
        return len(self.log.read_text().splitlines())

    def kill(self) -> None:
        """SIGKILL the sidecar, then its app (which dies with its supervisor on a branch
        that has that; killed here either way, so the restart gets its port back)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(WAIT)
        self._kill_app()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._kill_app()

    def _kill_app(self) -> None:
        """The pid is checked to be still our app: a pid long gone may be another's now."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.cwd / "app.pid").read_text())
            if str(APP).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(pid, signal.SIGKILL)


@dataclass(slots=True)
class Call:
    n: int
    kind: str  # "publish" or "save"
    phase: str
    outcome: str  # "204", "500 ERR_PUBSUB_PUBLISH_MESSAGE", "ConnectionRefusedError", ...

    @property
    def accepted(self) -> bool:
        return self.outcome == "204"


@dataclass
class Load:
    """One caller publishing (and saving state) through ``sidecar`` until stopped."""

    sidecar: Sidecar
    save_state: bool = False
    phase: str = "before"
    calls: list[Call] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(CALL_TIMEOUT + 10)

    def accepted(self, kind: str = "publish", phase: str | None = None) -> set[int]:
        return {c.n for c in list(self.calls)
                if c.kind == kind and c.accepted and phase in (None, c.phase)}

    def outcomes(self, kind: str, phase: str) -> collections.Counter[str]:
        return collections.Counter(c.outcome for c in list(self.calls)
                                   if c.kind == kind and c.phase == phase)

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            phase, base = self.phase, self.sidecar.url
            outcome = _post(f"{base}/v1.0/publish/pubsub/{TOPIC}", {"n": n})
            self.calls.append(Call(n, "publish", phase, outcome))
            if self.save_state:
                outcome = _post(f"{base}/v1.0/state/statestore", [{"key": f"s{n}", "value": n}])
                self.calls.append(Call(n, "save", phase, outcome))
            n += 1
            time.sleep(PACE)


def _post(url: str, body: object) -> str:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as response:
            return str(response.status)
    except urllib.error.HTTPError as exc:
        try:
            code = json.loads(exc.read()).get("errorCode", "")
        except ValueError:
            code = "(not JSON)"
        return f"{exc.code} {code}".strip()
    except OSError as exc:
        reason = getattr(exc, "reason", exc)  # URLError wraps the socket's error
        return type(reason).__name__


def state_of(sidecar: Sidecar, keys: list[str]) -> dict[str, Any]:
    """The values of ``keys`` in the state store (bulk GET), absent keys left out."""
    request = urllib.request.Request(
        f"{sidecar.url}/v1.0/state/statestore/bulk", method="POST",
        data=json.dumps({"keys": keys}).encode(), headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=CALL_TIMEOUT) as response:
        items = json.load(response)
    return {item["key"]: item["data"] for item in items if "data" in item}


def report(name: str, load: Load, sidecar: Sidecar, **extra: object) -> dict[str, Any]:
    """The counts of one fault test, printed on one line (pytest -s) for the docs."""
    handled = sidecar.handled()
    accepted = load.accepted()
    counts: dict[str, Any] = {
        "publishes": sum(1 for c in load.calls if c.kind == "publish"),
        "accepted": len(accepted),
        "delivered": len(accepted & handled.keys()),
        "duplicates": sum(count - 1 for count in handled.values()),
        "lost": len(accepted - handled.keys()),
        # a call cut off (no answer) or refused may still have published: it is delivered
        # then, and counted here (at-least-once: a caller retrying it makes a duplicate)
        "delivered_not_accepted": len(handled.keys() - accepted),
        "unknown": len(handled.keys() - {c.n for c in load.calls if c.kind == "publish"}),
        "outcomes": {phase: dict(load.outcomes("publish", phase))
                     for phase in ("before", "outage", "after")},
        "log_lines": sidecar.log_lines(),
        **extra,
    }
    print(f"\nfaults[{name}]: {json.dumps(counts)}")
    return counts
