"""Object-store emulators for the binding tests: moto's S3 server and Azurite's blob service,
each started once per session on a free loopback port.

Under CI=true a server that cannot be started fails the run (tests.servers.unavailable);
elsewhere its tests are skipped with the reason. Azurite comes from npm: scripts/test installs
tests/bindings/azurite (``npm ci``) before the run.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.servers import free_port, unavailable, wait_for_port

AZURITE_DIR = Path(__file__).parent / "azurite"
AZURITE_BLOB = AZURITE_DIR / "node_modules" / ".bin" / "azurite-blob"
#: Azurite's well-known development account (public, in every Azure SDK's docs)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")


def _stop(process: subprocess.Popen[bytes], graceful: bool = True) -> None:
    if graceful:
        process.terminate()
        try:
            process.wait(5)
            return
        except subprocess.TimeoutExpired:
            pass
    process.kill()
    process.wait(5)


@contextlib.contextmanager
def run_moto() -> Iterator[str]:
    """moto's S3-compatible server; yields its ``http://127.0.0.1:PORT`` endpoint."""
    binary = Path(sys.executable).parent / "moto_server"
    command = [str(binary)] if binary.exists() else [sys.executable, "-m", "moto.server"]
    port = free_port()
    log = tempfile.NamedTemporaryFile(prefix="moto-", suffix=".log", delete=False)
    process = subprocess.Popen([*command, "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 30, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)
        log.close()


@contextlib.contextmanager
def run_azurite() -> Iterator[str]:
    """Azurite's blob service; yields its ``http://127.0.0.1:PORT`` endpoint (the account
    is :data:`AZURITE_ACCOUNT`)."""
    if not AZURITE_BLOB.exists():
        unavailable(f"azurite is not installed: npm ci --prefix {AZURITE_DIR} "
                    "(scripts/test does it)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="tether-azurite-")
    log = tempfile.NamedTemporaryFile(prefix="azurite-", suffix=".log", delete=False)
    process = subprocess.Popen(
        [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--location", workdir, "--silent", "--skipApiVersionCheck", "--loose"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, 30, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        # Azurite's graceful shutdown takes 10 s and more; its data is thrown away anyway
        _stop(process, graceful=False)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
