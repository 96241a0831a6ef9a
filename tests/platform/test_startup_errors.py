"""Components that cannot work stop the start with one clear error, never a traceback or a
retry loop: an unreachable store or broker, a client library (``tether[...]`` extra) that is
not installed, a component type Tether does not implement (docs/running.md, "Startup
errors"; docs/components.md, "Supported component types")."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import free_port
from tether.cli.run.logs import setup_logging
from tether.platform.components import ResourceError, load_resources
from tether.platform.configuration.registry import CONFIGURATION_TYPES
from tether.platform.lock.registry import LOCK_TYPES
from tether.platform.pubsub.registry import PUBSUB_TYPES
from tether.platform.state.registry import STATE_TYPES
from tether.sidecar.blocks import COMPONENT_TYPES
from tether.sidecar.server import Sidecar, SidecarError

WAIT = 60.0


def component_yaml(name: str, type_: str, **metadata: str) -> str:
    items = "".join(f"  - name: {k}\n    value: \"{v}\"\n" for k, v in metadata.items())
    return (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\n"
        f"metadata:\n  name: {name}\nspec:\n  type: {type_}\n  version: v1\n"
        + (f"  metadata:\n{items}" if items else "")
    )


def tether_run(resources: Path, *options: str) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "tether.cli.main", "run", "--app-id", "a",
         "-H", str(free_port()), "-d", str(resources), *options,
         "--", sys.executable, "-c", "open('started', 'w')"],
        cwd=resources.parent, capture_output=True, text=True, timeout=WAIT,
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def resources(tmp_path: Path) -> Path:
    folder = tmp_path / "resources"
    folder.mkdir()
    return folder


def closed() -> str:
    """A loopback address nothing listens on."""
    return f"127.0.0.1:{free_port()}"


# --- real `tether run` processes: one per failure mode -----------------------------------


def test_an_unreachable_store_and_broker_stop_tether_run_with_one_json_error(
    resources: Path,
) -> None:
    (resources / "pubsub.yaml").write_text(
        component_yaml("pubsub", "pubsub.redis", redisHost=closed()))
    (resources / "state.yaml").write_text(
        component_yaml("statestore", "state.redis", redisHost=closed()))
    code, out, err = tether_run(resources, "--log-format", "json")
    assert code == 1
    assert "Traceback" not in out + err
    lines = [json.loads(line) for line in err.splitlines()]
    errors = [line for line in lines if line["level"] == "error"]
    assert len(errors) == 1, err
    assert "cannot reach Redis" in errors[0]["msg"]
    assert "'a'" in errors[0]["msg"]
    assert not (resources.parent / "started").exists()  # the app never starts


def test_an_unknown_component_type_stops_tether_run_naming_the_file_and_type(
    resources: Path,
) -> None:
    (resources / "sms.yaml").write_text(
        component_yaml("text-me", "bindings.twilio.sms", toNumber="+1555"))
    code, out, err = tether_run(resources)
    assert code == 1
    assert "Traceback" not in out + err
    errors = [line for line in err.splitlines() if " ERROR " in line]
    assert len(errors) == 1, err
    assert "sms.yaml" in errors[0] and "'bindings.twilio.sms'" in errors[0]
    assert not (resources.parent / "started").exists()


# --- the same, in process, for every kind of store and broker ----------------------------


async def start_sidecar(resources: Path) -> str:
    """Start a sidecar on ``resources``; the SidecarError it must raise, as text."""
    sidecar = Sidecar("a", free_port(), [resources])
    try:
        with pytest.raises(SidecarError) as caught:
            await sidecar.start()
    finally:
        await sidecar.stop()
    return str(caught.value)


@pytest.mark.parametrize(("type_", "metadata", "reason"), [
    ("state.redis", {"redisHost": "{closed}"}, "cannot reach Redis"),
    ("state.postgresql",
     {"connectionString": "host=127.0.0.1 port={port} connect_timeout=2", "timeout": "2s"},
     "PostgreSQL state store"),
    ("state.sqlite", {"connectionString": "/proc/no/such/dir/state.db"}, "state.db"),
    ("lock.redis", {"redisHost": "{closed}"}, "cannot reach Redis"),
    ("lock.sqlite", {"connectionString": "/proc/no/such/dir/locks.db"}, "locks.db"),
    ("configuration.redis", {"redisHost": "{closed}"}, "cannot reach Redis"),
    ("configuration.postgresql",
     {"connectionString": "host=127.0.0.1 port={port} connect_timeout=2", "table": "t"},
     "cannot reach PostgreSQL"),
    ("pubsub.redis", {"redisHost": "{closed}"}, "cannot reach Redis"),
    ("pubsub.kafka", {"brokers": "{closed}"}, "cannot reach Kafka"),
])
async def test_a_component_that_cannot_be_reached_stops_the_sidecar(
    resources: Path, type_: str, metadata: dict[str, str], reason: str
) -> None:
    port = free_port()
    filled = {k: v.format(closed=f"127.0.0.1:{port}", port=port) for k, v in metadata.items()}
    (resources / "c.yaml").write_text(component_yaml("c", type_, **filled))
    message = await start_sidecar(resources)
    assert "app 'a'" in message
    assert reason.format(port=port) in message


@pytest.mark.parametrize(("type_", "module", "extra"), [
    ("pubsub.redis", "redis", "redis"),
    ("pubsub.kafka", "aiokafka", "kafka"),
    ("state.redis", "redis", "redis"),
    ("state.postgresql", "psycopg", "postgresql"),
    ("lock.redis", "redis", "redis"),
    ("configuration.redis", "redis", "redis"),
    ("configuration.postgresql", "psycopg", "postgresql"),
])
async def test_a_missing_extra_is_named_at_start(
    resources: Path, monkeypatch: pytest.MonkeyPatch, type_: str, module: str, extra: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if tether[extra] were not installed
    metadata = {"redisHost": closed(), "brokers": closed(), "connectionString": "host=x",
                "table": "t"}
    (resources / "c.yaml").write_text(component_yaml("c", type_, **metadata))
    message = await start_sidecar(resources)
    assert f"pip install 'tether[{extra}]'" in message
    assert "c.yaml" in message


# --- the loader: unknown types are a load error -------------------------------------------


@pytest.mark.parametrize(("type_", "expected"), [
    ("state.mongodb", "supported: state.in-memory"),
    ("pubsub.rabbitmq", "supported: pubsub.tether.embedded"),
    ("bindings.twilio.sms", "supported: bindings.cron"),
    ("middleware.http.ratelimit", "Tether has no middleware components"),
    ("nameresolution.mdns", "Tether has no nameresolution components"),
    ("conversation.openai", "Tether has no conversation components"),
])
def test_an_unknown_type_is_a_load_error_naming_the_file_and_type(
    resources: Path, type_: str, expected: str
) -> None:
    (resources / "x.yaml").write_text(component_yaml("x", type_))
    with pytest.raises(ResourceError) as caught:
        load_resources(resources, "a", types=COMPONENT_TYPES)
    message = str(caught.value)
    assert message.startswith(f"{resources / 'x.yaml'}, document 1: spec.type {type_!r}")
    assert expected in message


def test_every_block_registry_is_known_to_the_sidecar() -> None:
    blocks = {types.block for types in COMPONENT_TYPES}
    assert {"pubsub", "state", "secretstores", "lock", "configuration"} <= blocks
    for types in (PUBSUB_TYPES, STATE_TYPES, LOCK_TYPES, CONFIGURATION_TYPES):
        assert types in COMPONENT_TYPES


def test_without_types_the_loader_keeps_any_type(resources: Path) -> None:
    (resources / "x.yaml").write_text(component_yaml("x", "bindings.cron"))
    (component,) = load_resources(resources, "a").components
    assert component.type == "bindings.cron"


def test_the_docs_list_every_supported_type() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "components.md").read_text()
    for types in COMPONENT_TYPES:
        for type_ in types.types:
            assert f"`{type_}`" in docs, type_


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """setup_logging configures the process's loggers: put them back for the other tests."""
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate)
             for logger in (logging.getLogger(), logging.getLogger("tether"))]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def test_library_lines_are_json_warnings_and_tethers_error_stays_the_one_error(
    restored_logging: None,
) -> None:
    # aiokafka logs its own ERROR when it cannot connect, before Tether reports the start
    # error: it must neither be a bare line in JSON logs nor a second ERROR
    out = io.StringIO()
    setup_logging("json", out)
    logging.getLogger("aiokafka").error('Unable connect to "%s"', "10.0.0.1:9092")
    logging.getLogger("tether.cli.run").error("cannot start the components of app 'a'")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["scope"], line["level"]) for line in lines] == [
        ("aiokafka", "warning"), ("tether.cli.run", "error")
    ]


def test_a_library_repeating_itself_is_one_line_a_minute(restored_logging: None) -> None:
    # aiohttp logs every malformed request a caller sends (with a traceback): a hostile
    # caller could flood the sidecar's log
    out = io.StringIO()
    setup_logging("text", out)
    server = logging.getLogger("aiohttp.server")
    for _ in range(50):
        server.error("Error handling request")
    logging.getLogger("aiohttp.server").warning("something else")
    lines = out.getvalue().splitlines()
    assert len([line for line in lines if "Error handling request" in line]) == 1
    assert any("something else" in line for line in lines)
