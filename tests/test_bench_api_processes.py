"""bench/api_processes.py stays runnable: both backends and operations, tiny durations, and
the ratio lines (the figures depend on the machine and are not checked)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.servers import unavailable

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "api_processes.py"


def test_each_backend_and_operation_prints_its_ratio() -> None:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not on PATH (Debian package redis-server)")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "0.5", "--warmup", "0.2",
         "--connections", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    for backend in ("embedded", "redis"):
        for op in ("publish", "get"):
            ratio = [line for line in result.stdout.splitlines()
                     if line.split()[:3] == [backend, op, "N=2"] and "vs 1: raw" in line]
            assert len(ratio) == 1, out
            assert "errors 0" in next(line for line in result.stdout.splitlines()
                                      if line.split()[:3] == [backend, op, "N=2"]
                                      and "req/s" in line and "vs" not in line), out
