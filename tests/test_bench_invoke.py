"""bench/invoke.py stays runnable: a tiny run on embedded, and the lines it prints.

The figures themselves are not checked (they depend on the machine); only that the call
through two sidecars was measured against the direct call in the same run, compared with
Dapr's figures, and that the CPU per call and saturation line came out.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "invoke.py"


def test_a_tiny_run_prints_every_line_on_embedded() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--backends", "embedded", "--requests", "50",
         "--rate", "200", "--seconds", "0.3", "--workers", "4"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("load average:"), result.stdout
    rows = {line.split()[1]: line.split()[2:] for line in lines
            if line.startswith("embedded ") and len(line.split()) == 5}
    assert set(rows) == {"direct", "invoke", "added", "/dapr"}, result.stdout
    assert all(value.endswith("x") for value in rows["/dapr"]), result.stdout
    for name in ("direct", "invoke", "added"):
        assert all(float(value) == float(value) for value in rows[name]), result.stdout
    saturation = [line for line in lines if "CPU per paced call" in line]
    assert len(saturation) == 1 and "calls/s invoked" in saturation[0], result.stdout
    assert "req/s direct" in saturation[0], result.stdout
