"""examples/bindings under `tether run -f`: cron ticks reach the app, which writes them to
the machine's PostgreSQL through the output binding and reads them back."""

from __future__ import annotations

import re
from pathlib import Path

from tests.examples import run_example

PREFIX = "== APP - batch-writer == "


def test_cron_ticks_are_written_to_postgresql_through_the_output_binding(
    tmp_path: Path, postgres_dsn: str,
) -> None:
    # the fixture makes sure the machine's PostgreSQL answers (the example's component
    # names it: 127.0.0.1:5432, database test)
    result = run_example("bindings", tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = [line.removeprefix(PREFIX) for line in result.stdout.splitlines()
             if line.startswith(PREFIX)]
    ticks = [line for line in lines if line.startswith("tick ")]
    assert [t.split(":")[0] for t in ticks] == ["tick 1", "tick 2", "tick 3"], output
    summary = [line for line in lines if re.match(r"run \w+: 3 ticks in PostgreSQL", line)]
    assert summary, output
    written = {t.split("wrote ", 1)[1] for t in ticks}
    assert all(stamp in summary[0] for stamp in written), output
