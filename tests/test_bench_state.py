"""bench/state.py stays runnable: every store and target, tiny sizes, and the ratio lines.

The figures themselves are not checked (they depend on the machine); only that each target
ran against the raw client on the same server in the same run and printed the comparison.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.servers import unavailable

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "state.py"
TINY = ["--ops", "40", "--concurrent-ops", "80", "--concurrency", "4", "--keys", "20"]


def test_every_store_and_target_prints_its_ratios(postgres_dsn: str) -> None:
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not on PATH (Debian package redis-server)")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY, "--postgres", postgres_dsn],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    lines = result.stdout.splitlines()
    for store in ("redis", "postgresql", "sqlite"):
        start = next(i for i, line in enumerate(lines) if line.startswith(f"{store}: raw = "))
        block = lines[start:start + 22]
        for mode in ("sequential", "concurrent"):
            assert any(line.strip().startswith(mode) for line in block), out
        ratio = [line for line in block if "% of raw" in line]
        # store, http and client for save and get, sequential and concurrent
        assert len(ratio) == 12, out
        assert sum("% of store" in line for line in ratio) == 8, out
    # the bench's tables are gone from the shared database
    import re

    import psycopg

    header = next(line for line in lines if line.startswith("postgresql: raw = "))
    tag = re.search(r"bench_raw_(\w+)", header)
    assert tag is not None, header
    with psycopg.connect(postgres_dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE %s",
                           (f"bench_%{tag.group(1)}%",)).fetchone()
    assert row == (0,)
