"""An example of ``examples/`` run as the README says: ``tether run -f`` from the venv the
tests run in (its ``bin`` first on PATH, so the apps' ``python3`` is that venv's), in a
folder of the test's own so the example's broker files start empty."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_example(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(
        [str(bin_dir / "tether"), "run", "-f", str(ROOT / "examples" / name / "dapr.yaml")],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
    )
