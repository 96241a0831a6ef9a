"""Tether's one log format (tether/platform/logs.py): real ``tether run`` processes, and the
formatter on its own."""

from __future__ import annotations

import io
import json
import logging
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.platform.test_run_delivery import WAIT, Run, runs  # noqa: F401 (fixture)
from tether.platform.logs import log_context, setup_logging, trace_fields

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
FIELDS = {"time", "level", "msg", "scope", "app_id"}


def publish(run: Run, data: object) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{run.http_port}/v1.0/publish/pubsub/orders",
        data=json.dumps(data).encode(), method="POST",
        headers={"Content-Type": "application/json", "traceparent": TRACEPARENT},
    )
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        assert response.status == 204


def test_json_logs_carry_the_fields_and_a_delivery_names_its_event(
    tmp_path: Path, runs: list[Run],  # noqa: F811
) -> None:
    run = Run(tmp_path, "programmatic", "--log-format", "json", "--log-level", "debug")
    runs.append(run)
    run.subscriptions()
    publish(run, {"kind": "gadget", "n": 1})
    [delivered] = run.deliveries(1)
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0, err
    lines = [json.loads(line) for line in err.splitlines()]  # every line is JSON
    assert lines
    for line in lines:
        assert FIELDS <= line.keys(), line
        assert line["app_id"] == "shop"
    [delivery] = [line for line in lines if line["msg"].startswith("delivered to /orders")]
    assert delivery["level"] == "debug"
    assert delivery["topic"] == "orders"
    assert delivery["component"] == "pubsub"
    assert delivery["event_id"] == delivered["body"]["id"]
    assert delivery["trace_id"] == TRACE_ID
    assert len(delivery["span_id"]) == 16
    # Dapr's status lines are log lines in JSON mode (stdout is the app's JSON lines)
    messages = [line["msg"] for line in lines]
    assert "You're up and running! Both Dapr and your app logs will appear here." in messages
    assert "Exited App successfully" in messages
    assert "Exited Dapr successfully" in messages


def test_log_level_warn_hides_info_and_dapr_status_lines_are_on_stdout(
    tmp_path: Path, runs: list[Run],  # noqa: F811
) -> None:
    run = Run(tmp_path, "programmatic", "--log-level", "warn")
    runs.append(run)
    run.subscriptions()
    publish(run, {"kind": "gadget", "n": 1})
    run.deliveries(1)
    run.proc.send_signal(signal.SIGTERM)
    code, out, err = run.finish()
    assert code == 0, err
    assert " INFO " not in err and "subscribed to" not in err
    lines = out.splitlines()
    # the dapr CLI's lines, as scripts that wait for them match them
    assert "✅  You're up and running! Both Dapr and your app logs will appear here." in lines
    assert lines.index("✅  Exited App successfully") < lines.index("✅  Exited Dapr successfully")


def test_info_lines_show_at_the_default_level(tmp_path: Path, runs: list[Run]) -> None:  # noqa: F811
    run = Run(tmp_path, "programmatic")
    runs.append(run)
    run.subscriptions()
    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0, err
    assert " INFO " in err and "delivered to" not in err  # debug lines hidden


@pytest.fixture
def restored_logging() -> Iterator[None]:
    saved = [(logger, logger.handlers[:], logger.level, logger.propagate)
             for logger in (logging.getLogger(), logging.getLogger("tether"))]
    yield
    for logger, handlers, level, propagate in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate


def test_a_call_s_extra_wins_over_the_context_and_text_lines_show_fields(
    restored_logging: None,
) -> None:
    out = io.StringIO()
    setup_logging("json", out, app_id="orders")
    log = logging.getLogger("tether.workers.workflows")
    with log_context(topic="t", instance_id="wf-1", **trace_fields(TRACEPARENT)):
        log.info("step", extra={"instance_id": "wf-2"})
    log.info("outside")
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert inside["instance_id"] == "wf-2" and inside["topic"] == "t"
    assert inside["trace_id"] == TRACE_ID and inside["span_id"] == "00f067aa0ba902b7"
    assert inside["app_id"] == "orders" and inside["scope"] == "tether.workers.workflows"
    assert outside.keys() == FIELDS

    text = io.StringIO()
    setup_logging("text", text, level="warn")
    with log_context(topic="t", event_id="e1"):
        log.info("hidden")
        log.warning("shown")
    [line] = text.getvalue().splitlines()
    assert line.endswith(" WARNING shown topic=t event_id=e1")


def test_a_malformed_traceparent_gives_no_ids() -> None:
    assert trace_fields("garbage") == {}
    assert trace_fields(None) == {}
