"""The README's first command: the orders example under `tether run -f`, end to end.

Runs what ./scripts/demo runs last (the install step is the venv this test runs in), in a
temporary folder so the embedded broker file is fresh, and checks the summary it prints.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.examples import run_example

PREFIX = "== APP - order-publisher == "
PROCESSOR = "== APP - order-processor == "
WHOLE_LINE = re.compile(r"/orders/\w+: order \d+ \([^)]*\) -> [A-Z]+( \(.*\))?")


def _run_demo(cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_example("orders", cwd)


def test_demo_routes_retries_and_dead_letters(tmp_path: Path) -> None:
    result = _run_demo(tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # the broker file was created where tether run started, not in the repository
    assert (tmp_path / ".tether" / "orders-demo.db").exists()

    summary = result.stdout.split(PREFIX + "== summary ==\n", 1)
    assert len(summary) == 2, output
    lines = [line.removeprefix(PREFIX) for line in summary[1].splitlines()
             if line.startswith(PREFIX)]
    orders = [line for line in lines if line.startswith("order ")]
    assert orders == [
        "order 1 (order.created, amount 250): /orders/standard SUCCESS",
        "order 2 (order.created, amount 4800): /orders/large SUCCESS",
        "order 3 (refund, amount 90): /orders/refund SUCCESS",
        "order 4 (order.express, amount 120): /orders/express RETRY, /orders/express RETRY,"
        " /orders/express SUCCESS",
        "order 5 (order.created, amount -5): /orders/invalid DROP, /orders/deadletter SUCCESS",
        "order 6 (order.created, amount 30): /orders/standard SUCCESS",
    ], output
    assert any("dead letter from orders" in line and "/orders/invalid" in line
               for line in lines), output
    assert lines[-1] == "all orders settled", output
    # the processor handles deliveries on several threads: each prints one whole line
    processor = [line.removeprefix(PROCESSOR) for line in result.stdout.splitlines()
                 if line.startswith(PROCESSOR) and "/orders/" in line]
    assert processor and all(WHOLE_LINE.fullmatch(line) for line in processor), processor


def test_demo_rerun_sees_only_its_own_orders(tmp_path: Path) -> None:
    # the second run reuses the broker file: the first run's events are not delivered again
    # (the group committed them) and the summary still covers exactly this run's orders
    assert _run_demo(tmp_path).returncode == 0
    result = _run_demo(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("/orders/deadletter: order 5") == 1, result.stdout
    assert PREFIX + "all orders settled" in result.stdout
