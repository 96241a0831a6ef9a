"""bench/actors.py stays runnable: a tiny run on embedded, and the lines it prints (the
figures themselves depend on the machine and are not checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "actors.py"


def test_a_tiny_run_prints_every_line_on_embedded() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--backends", "embedded", "--requests", "50",
         "--rate", "200", "--seconds", "0.3", "--workers", "4", "--reminders", "20"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("load average:"), result.stdout
    rows = {line.split()[1]: line.split()[2:] for line in lines
            if line.startswith("embedded ") and len(line.split()) == 5}
    assert set(rows) == {"activation", "warm", "/dapr"}, result.stdout
    assert all(value.endswith("x") for value in rows["/dapr"]), result.stdout
    summary = [line for line in lines if "CPU per activation call" in line]
    assert len(summary) == 1 and "reminders fired" in summary[0], result.stdout
