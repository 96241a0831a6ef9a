"""examples/actors under `tether run -f`: 20 concurrent deposits to one actor all count, and
a durable reminder adds the interest."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_FILE = ROOT / "examples" / "actors" / "dapr.yaml"
TELLER = "== APP - teller == "


def test_concurrent_deposits_are_turns_and_the_reminder_adds_interest(tmp_path: Path) -> None:
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run([str(bin_dir / "tether"), "run", "-f", str(RUN_FILE)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = [line.removeprefix(TELLER) for line in result.stdout.splitlines()
             if line.startswith(TELLER)]
    assert lines == [
        "after 20 concurrent deposits of 10: {'account': 'alice', 'balance': 200}",
        "after the interest reminder: balance 220",
    ], output
