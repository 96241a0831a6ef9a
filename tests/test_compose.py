"""compose/ cannot be started here (no Docker engine); check it is valid and consistent."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = Path(__file__).resolve().parents[1] / "compose" / "docker-compose.yml"


def test_compose_file_defines_kafka_in_kraft_mode_and_redis() -> None:
    spec = yaml.safe_load(COMPOSE.read_text())
    services = spec["services"]
    assert set(services) >= {"kafka", "redis"}
    kafka_env = services["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"]  # KRaft: no ZooKeeper
    assert "zookeeper" not in services
    assert "9092:9092" in services["kafka"]["ports"]
    assert "6379:6379" in services["redis"]["ports"]
    for name in ("kafka", "redis"):
        assert "healthcheck" in services[name]
    for volume in ("kafka-data", "redis-data"):
        assert volume in spec["volumes"]


def test_compose_file_documents_the_broker_urls() -> None:
    text = COMPOSE.read_text()
    assert "kafka://127.0.0.1:9092" in text
    assert "redis://127.0.0.1:6379/0" in text
