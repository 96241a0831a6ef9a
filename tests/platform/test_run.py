"""``tether run`` as a real process: the sidecar, the app and their shared lifecycle."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import alive
from tether.cli.run import free_port

# a wait ceiling for things that should happen, never an assertion about speed
WAIT = 30.0

# writes its environment, listens on APP_PORT, records the signal that stops it
LISTENING_APP = """
import json, os, signal, socket, sys
def stop(sig, frame):
    open("signal.txt", "w").write(signal.Signals(sig).name)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
server = socket.socket()
server.bind(("127.0.0.1", int(os.environ["APP_PORT"])))
server.listen()
json.dump({**os.environ, "pid": os.getpid()}, open("env.tmp", "w"))
os.rename("env.tmp", "env.json")
print("app up", flush=True)
while True:
    server.accept()[0].close()
"""


def tether_run(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "run", *args],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=WAIT)
    return proc.returncode, out, err


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Started ``tether run`` processes; any still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def http(method: str, url: str, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"tether run exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def wait_for_sidecar(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"tether run exited early: {proc.communicate()}")
        try:
            if http("GET", f"http://127.0.0.1:{port}/v1.0/healthz") == 204:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the sidecar never answered"
        time.sleep(0.05)


def is_listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except OSError:
        return False
    return True


def test_app_gets_the_dapr_environment_and_sigterm_stops_app_and_sidecar(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    http_port, app_port = free_port(), free_port()
    proc = tether_run(
        "--app-id", "orders", "--app-port", str(app_port), "--http-port", str(http_port),
        "--", sys.executable, "-c", LISTENING_APP, cwd=tmp_path,
    )
    procs.append(proc)
    wait_for(tmp_path / "env.json", proc)
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["APP_ID"] == env["TETHER_APP_ID"] == "orders"
    assert env["APP_PORT"] == env["TETHER_APP_PORT"] == str(app_port)
    assert env["DAPR_HTTP_PORT"] == env["TETHER_HTTP_PORT"] == str(http_port)
    assert int(env["DAPR_GRPC_PORT"]) not in (0, http_port, app_port)
    # the sidecar's embedded defaults, wherever the app's working directory is
    assert env["TETHER_DATA_DIR"] == str(tmp_path / ".tether")

    wait_for_sidecar(http_port, proc)
    base = f"http://127.0.0.1:{http_port}/v1.0"
    assert http("POST", f"{base}/publish/pubsub/orders", b'{"id": 1}') == 204
    assert http("GET", f"{base}/healthz/outbound") == 204
    assert (tmp_path / ".tether" / "broker.db").exists()  # the embedded default pub/sub

    proc.send_signal(signal.SIGTERM)
    code, out, err = finish(proc)
    assert code == 0, err
    assert (tmp_path / "signal.txt").read_text() == "SIGTERM"  # forwarded to the app
    assert "== APP - orders == app up" in out
    assert not is_listening(http_port)
    assert not is_listening(app_port)


def test_a_sigkilled_tether_run_takes_its_app_down(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    app_port = free_port()
    proc = tether_run(
        "--app-id", "orphan", "-p", str(app_port), "-H", str(free_port()),
        "--", sys.executable, "-c", LISTENING_APP, cwd=tmp_path,
    )
    procs.append(proc)
    wait_for(tmp_path / "env.json", proc)
    app = json.loads((tmp_path / "env.json").read_text())["pid"]
    proc.kill()  # tether run only: nothing it runs can tell the app to stop
    proc.communicate()
    deadline = time.monotonic() + WAIT
    while alive(app):
        assert time.monotonic() < deadline, "the app outlived its tether run"
        time.sleep(0.05)
    assert (tmp_path / "signal.txt").read_text() == "SIGTERM"  # a chance to clean up
    assert not is_listening(app_port)


def test_sigint_is_forwarded_as_sigint(tmp_path: Path, procs: list[subprocess.Popen[str]]) -> None:
    http_port, app_port = free_port(), free_port()
    proc = tether_run(
        "--app-id", "a", "-p", str(app_port), "-H", str(http_port),
        "--", sys.executable, "-c", LISTENING_APP, cwd=tmp_path,
    )
    procs.append(proc)
    wait_for(tmp_path / "env.json", proc)
    proc.send_signal(signal.SIGINT)
    code, _, err = finish(proc)
    assert code == 0, err
    assert (tmp_path / "signal.txt").read_text() == "SIGINT"


def test_the_apps_exit_code_is_tethers(tmp_path: Path) -> None:
    app = "import sys; print('bye', flush=True); sys.exit(7)"
    proc = tether_run(
        "--app-id", "quitter", "-H", str(free_port()), "--", sys.executable, "-c", app,
        cwd=tmp_path,
    )
    code, out, err = finish(proc)
    assert code == 7, err
    assert "== APP - quitter == bye" in out.splitlines()
    assert "exited with code 7" in err


def test_an_app_that_ignores_sigterm_is_killed_after_the_grace_period(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    app = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open('ready', 'w').close()\n"
        "while True: time.sleep(1)"
    )
    proc = tether_run(
        "--app-id", "stubborn", "-H", str(free_port()), "--grace-period", "0.5",
        "--", sys.executable, "-c", app, cwd=tmp_path,
    )
    procs.append(proc)
    wait_for(tmp_path / "ready", proc)
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 0, err
    assert "killing it" in err


def test_an_app_that_never_listens_on_its_port_is_a_clear_error(tmp_path: Path) -> None:
    app_port = free_port()
    proc = tether_run(
        "--app-id", "deaf", "--app-port", str(app_port), "-H", str(free_port()),
        "--app-port-timeout", "0.5",
        "--", sys.executable, "-c", "import time; time.sleep(60)", cwd=tmp_path,
    )
    code, _, err = finish(proc)
    assert code == 1
    assert f"app 'deaf' did not listen on port {app_port}" in err


def test_a_bad_resource_file_stops_startup_naming_the_file(tmp_path: Path) -> None:
    resources = tmp_path / "resources"
    resources.mkdir()
    (resources / "broken.yaml").write_text("kind: Component\nmetadata: [unclosed\n")
    proc = tether_run(
        "--app-id", "a", "-H", str(free_port()), "--resources-path", str(resources),
        "--", sys.executable, "-c", "open('started', 'w')", cwd=tmp_path,
    )
    code, _, err = finish(proc)
    assert code == 1
    assert "broken.yaml" in err
    assert not (tmp_path / "started").exists()  # the app never starts


def test_a_busy_http_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = tether_run("--app-id", "a", "-H", str(port), cwd=tmp_path)
        code, _, err = finish(proc)
    assert code == 1
    assert f"cannot serve the HTTP API of app 'a' on 127.0.0.1:{port}" in err


def test_the_sidecar_alone_runs_until_post_shutdown(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    proc = tether_run("--app-id", "solo", "-H", str(port), "--log-format", "json", cwd=tmp_path)
    procs.append(proc)
    wait_for_sidecar(port, proc)
    assert http("POST", f"http://127.0.0.1:{port}/v1.0/shutdown") == 204
    code, _, err = finish(proc)
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines()]
    assert any("POST /v1.0/shutdown" in line["msg"] for line in lines)
    assert {line["level"] for line in lines} <= {"info", "warning"}


def test_an_app_killed_by_a_signal_exits_128_plus_the_signal(tmp_path: Path) -> None:
    app = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    proc = tether_run("--app-id", "a", "-H", str(free_port()), "--", sys.executable, "-c", app,
                      cwd=tmp_path)
    code, _, err = finish(proc)
    assert code == 128 + signal.SIGKILL, err


def test_a_command_that_cannot_start_is_a_clear_error(tmp_path: Path) -> None:
    proc = tether_run("--app-id", "a", "-H", str(free_port()), "--", "./no-such-program",
                      cwd=tmp_path)
    code, _, err = finish(proc)
    assert code == 1
    assert "cannot start app 'a'" in err
    assert "no-such-program" in err
