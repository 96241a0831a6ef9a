"""bench/pubsub.py stays runnable: every part, tiny sizes, and the ratio lines it prints.

The figures themselves are not checked (they depend on the machine); only that each part
ran against its baseline in the same run and printed the comparison.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.servers import unavailable

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "pubsub.py"
TINY = ["--seconds", "0.3", "--warmup", "0.1", "--bulk-sizes", "10", "100",
        "--bulk-events", "200", "--sdk-events", "200", "--window", "20",
        "--delivery-events", "100"]


def _bench(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args, *TINY],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_every_part_prints_its_comparison_on_embedded() -> None:
    out = _bench("--backends", "embedded")
    lines = out.splitlines()
    added = [line for line in lines if "added by the sidecar" in line]
    assert len(added) == 1 and "p50 " in added[0] and "p99 " in added[0], out
    assert "Dapr's published figures" in added[0], out
    bulk = [line for line in lines if line.startswith("(b) embedded: bulk of")]
    assert len(bulk) == 2 and all("% of direct" in line for line in bulk), out
    sdk = [line for line in lines if line.startswith("(c) embedded:")]
    assert len(sdk) == 1 and "% of broker layer" in sdk[0], out
    delivery = [line for line in lines if "% of ceiling" in line]
    assert len(delivery) == 4, out


def test_sdk_against_the_raw_redis_client() -> None:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not on PATH (Debian package redis-server)")
    out = _bench("--backends", "redis", "--parts", "c")
    sdk = [line for line in out.splitlines() if line.startswith("(c) redis:")]
    assert len(sdk) == 1 and "raw redis-py" in sdk[0] and "% of raw" in sdk[0], out
