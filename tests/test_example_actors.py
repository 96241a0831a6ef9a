"""examples/actors under `tether run -f`: 20 concurrent deposits to one actor all count, and
a durable reminder adds the interest."""

from __future__ import annotations

from pathlib import Path

from tests.examples import run_example

TELLER = "== APP - teller == "


def test_concurrent_deposits_are_turns_and_the_reminder_adds_interest(tmp_path: Path) -> None:
    result = run_example("actors", tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    lines = [line.removeprefix(TELLER) for line in result.stdout.splitlines()
             if line.startswith(TELLER)]
    assert lines == [
        "after 20 concurrent deposits of 10: {'account': 'alice', 'balance': 200}",
        "after the interest reminder: balance 220",
    ], output
