"""The ``tether`` console script, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tether


def tether_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tether.cli.main", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )


def test_version() -> None:
    result = tether_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"tether {tether.__version__}"


def test_broker_check_reports_a_round_trip_as_json() -> None:
    result = tether_cli("broker", "check", "--broker", "memory://", "--count", "20", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["broker"] == "memory://"
    assert report["count"] == 20
    assert set(report["latency_ms"]) == {"p50", "p90", "p99", "max"}
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["max"]


def test_broker_check_on_the_embedded_default_creates_its_file(tmp_path: Path) -> None:
    result = tether_cli("broker", "check", "--count", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
    assert (tmp_path / ".tether" / "broker.db").exists()


def test_broker_check_fails_clearly_on_an_unknown_scheme() -> None:
    result = tether_cli("broker", "check", "--broker", "carrier-pigeon://loft")
    assert result.returncode == 1
    assert "unknown broker URL scheme" in result.stderr
    assert "kafka://" in result.stderr


def test_broker_check_fails_clearly_when_kafka_is_unreachable() -> None:
    result = tether_cli(
        "broker", "check", "--broker", "kafka://127.0.0.1:1", "--timeout", "30"
    )
    assert result.returncode == 1
    assert "broker check failed" in result.stderr or "timed out" in result.stderr


def test_bad_count_is_a_usage_error() -> None:
    result = tether_cli("broker", "check", "--broker", "memory://", "--count", "0")
    assert result.returncode == 2
    assert "--count" in result.stderr
