"""bench/http_floor.py stays runnable: a bare floor and the sidecar, tiny phases, its table,
ratios and profile summary.

The figures themselves are not checked (they depend on the machine); only that both servers
were measured in the same run and the comparison was printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "http_floor.py"


def _py_spy_can_attach() -> bool:
    """py-spy needs ptrace rights over the sidecar (root, or ptrace_scope 0 here); where a
    container refuses them the bench runs without its profile, and so does this test."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        spy = Path(sys.executable).with_name("py-spy")
        return subprocess.run([str(spy), "dump", "--pid", str(child.pid)],
                              capture_output=True, timeout=30).returncode == 0
    finally:
        child.kill()
        child.wait()


PROFILING = _py_spy_can_attach()
PROFILE = ["--profile", "1"] if PROFILING else []


def test_a_floor_and_the_sidecar_print_their_table_and_ratios() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--seconds", "0.3", "--warmup", "0.1", "--rate", "200",
         "--connections", "2", "--only", "aiohttp", "sidecar", *PROFILE],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    lines = out.splitlines()
    assert sum(line.startswith("loadavg at ") for line in lines) == 2, out
    header = next(i for i, line in enumerate(lines) if line.startswith("server "))
    rows = {line.split()[0]: line for line in lines[header + 1 : header + 3]}
    assert set(rows) == {"aiohttp", "sidecar"}, out
    for row in rows.values():
        # CPU us/req, p50, p99, sent/s | req/s, CPU us/req, core, loadgen us/req
        assert len(re.findall(r"\d[\d,.]*%?", row)) == 8, row
    # the ratios at 1,000 req/s and at saturation, each with the sidecar against the floor
    assert sum("ratio to the fastest floor (aiohttp)" in line for line in lines) == 2, out
    assert sum(line.strip().startswith("sidecar CPU per publish / each floor") and
               "aiohttp " in line for line in lines) == 2, out
    if not PROFILING:
        return
    # the profile: samples grouped by package, Tether's among them, and the top functions
    profile = out[out.index("py-spy profile"):]
    assert "CPU over the window (/proc): main thread" in profile, profile
    assert "self time by package:" in profile and "top 20 functions" in profile, profile
