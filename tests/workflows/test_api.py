"""Dapr's workflow HTTP API through a real sidecar app (create_app + aiohttp TestServer) on
the embedded broker and a SQLite state store, with a WorkflowRuntime running the instances
in this process. Asserts Dapr's shapes, statuses and error codes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.workflows.api_env import Client, Env, running
from tests.workflows.api_wait import wait_until
from tether.platform.blocks import BlockContext
from tether.platform.components import Component
from tether.platform.json_body import MAX_DEPTH
from tether.platform.pubsub import PubSubRegistry
from tether.sidecar import create_app
from tether.sidecar.blocks import BLOCK_FACTORIES
from tether.sidecar.workflows import workflow_block

V1 = "/v1.0/workflows/dapr"
PREFIXES = ("/v1.0", "/v1.0-beta1", "/v1.0-alpha1")


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running(tmp_path) as e:
        yield e


TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6})?Z$")


async def post(client: Client, path: str, body: Any = None, raw: bytes | None = None
               ) -> tuple[int, Any]:
    data = raw if raw is not None else (None if body is None else json.dumps(body))
    resp = await client.post(path, data=data)
    text = await resp.text()
    return resp.status, (json.loads(text) if text else None)


async def get(client: Client, path: str) -> tuple[int, Any]:
    resp = await client.get(path)
    return resp.status, await resp.json()


async def status_of(client: Client, iid: str, prefix: str = "/v1.0") -> dict[str, Any]:
    code, body = await get(client, f"{prefix}/workflows/dapr/{iid}")
    assert code == 200, body
    assert isinstance(body, dict)
    return body


def until_status(client: Client, iid: str, *wanted: str) -> Callable[[], Awaitable[Any]]:
    async def check() -> Any:
        code, body = await get(client, f"/v1.0/workflows/dapr/{iid}")
        if code == 404:  # not created yet (a child workflow)
            return None
        assert code == 200, body
        return body if body["runtimeStatus"] in wanted else None
    return check


def error(code: str) -> Callable[[Any], bool]:
    return lambda body: isinstance(body, dict) and body.get("errorCode") == code \
        and isinstance(body.get("message"), str) and body["message"] != ""


def iid() -> str:
    return f"wf-{uuid.uuid4().hex[:12]}"


# --- start and get ------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", PREFIXES)
async def test_start_then_get_answers_dapr_shape(env: Env, prefix: str) -> None:
    wid = iid()
    code, body = await post(env.client, f"{prefix}/workflows/dapr/greet/start?instanceID={wid}",
                            "ann")
    assert (code, body) == (202, {"instanceID": wid})
    done = await wait_until(until_status(env.client, wid, "COMPLETED"))
    assert set(done) == {"instanceID", "workflowName", "createdAt", "lastUpdatedAt",
                         "runtimeStatus", "properties"}
    assert done["instanceID"] == wid and done["workflowName"] == "greet"
    assert TIMESTAMP.match(done["createdAt"]) and TIMESTAMP.match(done["lastUpdatedAt"])
    assert done["lastUpdatedAt"] >= done["createdAt"]
    assert done["properties"] == {
        "dapr.workflow.input": '"ann"',
        "dapr.workflow.output": '"hello hello ann"',
        "dapr.workflow.custom_status": '"greeting"',
    }
    # the other API versions read the same instance
    for other in PREFIXES:
        assert (await status_of(env.client, wid, other))["runtimeStatus"] == "COMPLETED"


async def test_start_without_instance_id_generates_one(env: Env) -> None:
    code, body = await post(env.client, f"{V1}/greet/start", {"name": "x"})
    assert code == 202
    generated = body["instanceID"]
    assert uuid.UUID(generated)  # Dapr generates a UUID
    done = await wait_until(until_status(env.client, generated, "COMPLETED"))
    # the input as the caller sent it (as Dapr keeps the bytes), not re-encoded
    assert done["properties"]["dapr.workflow.input"] == json.dumps({"name": "x"})


async def test_start_with_empty_body_has_no_input(env: Env) -> None:
    wid = iid()
    assert (await post(env.client, f"{V1}/approval/start?instanceID={wid}"))[0] == 202
    running = await wait_until(until_status(env.client, wid, "RUNNING"))
    assert running["properties"]["dapr.workflow.input"] == ""
    assert running["properties"]["dapr.workflow.custom_status"] == '{"waiting": "approve"}'
    assert "dapr.workflow.output" not in running["properties"]


@pytest.mark.parametrize(
    ("path", "raw", "status", "code"),
    [
        ("/greet/start?instanceID=" + "x" * 65, b'"a"', 400, "ERR_INSTANCE_ID_TOO_LONG"),
        ("/greet/start?instanceID=bad$id", b'"a"', 400, "ERR_INSTANCE_ID_INVALID"),
        ("/greet/start?instanceID=has.dot", b'"a"', 400, "ERR_INSTANCE_ID_INVALID"),
        # letters and digits are ASCII ones, as in Dapr's check
        ("/greet/start?instanceID=fine-id-%C3%A9", b'"a"', 400, "ERR_INSTANCE_ID_INVALID"),
        ("/greet/start?instanceID=fine-id-%C2%B2", b'"a"', 400, "ERR_INSTANCE_ID_INVALID"),
        ("//start?instanceID=fine-id", b'"a"', 400, "ERR_WORKFLOW_NAME_MISSING"),
        ("/greet/start?instanceID=fine-id", b"{not json", 400, "ERR_MALFORMED_REQUEST"),
        ("/greet/start?instanceID=fine-id", b"\xff\xfe", 400, "ERR_MALFORMED_REQUEST"),
        ("/greet/start?instanceID=fine-id", b"NaN", 400, "ERR_MALFORMED_REQUEST"),
        ("/greet/start?instanceID=fine-id", b'{"a": [Infinity]}', 400, "ERR_MALFORMED_REQUEST"),
        ("/nobody-hosts-this/start?instanceID=fine-id", b'"a"', 400, "ERR_START_WORKFLOW"),
    ],
)
async def test_bad_start_is_refused_and_creates_nothing(
    env: Env, path: str, raw: bytes, status: int, code: str
) -> None:
    resp_code, body = await post(env.client, V1 + path, raw=raw)
    assert resp_code == status and error(code)(body), body
    assert (await get(env.client, f"{V1}/fine-id"))[0] == 404


async def test_an_input_nested_too_deeply_is_refused_at_any_depth(env: Env) -> None:
    # the parser's own limit depends on the stack it runs on: just under it, an input was
    # accepted, or failed to encode a few frames deeper (a 500)
    for depth in range(MAX_DEPTH + 1, 1000, 3):
        raw = b"[" * depth + b"]" * depth
        code, body = await post(env.client, f"{V1}/greet/start?instanceID=deep", raw=raw)
        assert code == 400 and error("ERR_MALFORMED_REQUEST")(body), depth
    assert (await get(env.client, f"{V1}/deep"))[0] == 404


async def test_unknown_workflow_name_says_so(env: Env) -> None:
    _, body = await post(env.client, f"{V1}/nobody-hosts-this/start", "a")
    assert "nobody-hosts-this" in body["message"] and "not registered" in body["message"]


async def test_other_component_is_not_found(env: Env) -> None:
    code, body = await post(env.client, "/v1.0/workflows/temporal/greet/start", "a")
    assert code == 400 and error("ERR_WORKFLOW_COMPONENT_NOT_FOUND")(body)
    code, body = await get(env.client, "/v1.0/workflows/temporal/some-id")
    assert code == 400 and error("ERR_WORKFLOW_COMPONENT_NOT_FOUND")(body)


async def test_duplicate_running_instance_id_is_409_and_finished_id_restarts(env: Env) -> None:
    wid = iid()
    assert (await post(env.client, f"{V1}/approval/start?instanceID={wid}", 1))[0] == 202
    code, body = await post(env.client, f"{V1}/approval/start?instanceID={wid}", 2)
    assert code == 409 and error("ERR_START_WORKFLOW")(body)
    assert wid in body["message"]
    # the running instance is untouched
    assert (await status_of(env.client, wid))["properties"]["dapr.workflow.input"] == "1"
    assert (await post(env.client, f"{V1}/{wid}/raiseEvent/approve", "yes"))[0] == 202
    await wait_until(until_status(env.client, wid, "COMPLETED"))
    # a finished instance's id may be reused: a new run replaces it
    assert (await post(env.client, f"{V1}/greet/start?instanceID={wid}", "again"))[0] == 202
    done = await wait_until(until_status(env.client, wid, "COMPLETED"))
    assert done["workflowName"] == "greet"
    assert done["properties"]["dapr.workflow.output"] == '"hello hello again"'


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("POST", "/raiseEvent/approve"), ("POST", "/terminate"),
     ("POST", "/pause"), ("POST", "/resume"), ("POST", "/purge")],
)
async def test_unknown_instance_is_404(env: Env, method: str, suffix: str) -> None:
    resp = await env.client.request(method, f"{V1}/no-such-instance{suffix}")
    assert resp.status == 404
    body = await resp.json()
    assert error("ERR_INSTANCE_ID_NOT_FOUND")(body)
    assert body["message"] == ("unable to find workflow with the provided instance ID: "
                               "no-such-instance")


async def test_missing_instance_id_and_event_name(env: Env) -> None:
    code, body = await get(env.client, f"{V1}/")
    assert code == 400 and error("ERR_INSTANCE_ID_PROVIDED_MISSING")(body)
    code, body = await post(env.client, f"{V1}//terminate")
    assert code == 400 and error("ERR_INSTANCE_ID_PROVIDED_MISSING")(body)
    code, body = await post(env.client, f"{V1}/some-id/raiseEvent/", "x")
    assert code == 400 and error("ERR_WORKFLOW_EVENT_NAME_MISSING")(body)


# --- events, failures, lifecycle --------------------------------------------------------------

async def test_raise_event_completes_the_waiting_instance(env: Env) -> None:
    wid = iid()
    await post(env.client, f"{V1}/approval/start?instanceID={wid}", {"id": 7})
    await wait_until(until_status(env.client, wid, "RUNNING"))
    code, body = await post(env.client, f"/v1.0-beta1/workflows/dapr/{wid}/raiseEvent/approve",
                            {"by": "ann"})
    assert (code, body) == (202, None)
    done = await wait_until(until_status(env.client, wid, "COMPLETED"))
    assert done["properties"]["dapr.workflow.output"] == \
        '{"order": {"id": 7}, "decision": {"by": "ann"}}'


@pytest.mark.parametrize("raw", [b"yes please", b"NaN", b'{"by": -Infinity}'])
async def test_raise_event_body_must_be_json(env: Env, raw: bytes) -> None:
    wid = iid()
    await post(env.client, f"{V1}/approval/start?instanceID={wid}", 1)
    code, body = await post(env.client, f"{V1}/{wid}/raiseEvent/approve", raw=raw)
    assert code == 400 and error("ERR_MALFORMED_REQUEST")(body)
    assert (await status_of(env.client, wid))["runtimeStatus"] in ("PENDING", "RUNNING")


async def test_failed_instance_reports_failure_properties_without_output(env: Env) -> None:
    wid = iid()
    await post(env.client, f"{V1}/fail/start?instanceID={wid}", "boom")
    done = await wait_until(until_status(env.client, wid, "FAILED"))
    props = done["properties"]
    assert "dapr.workflow.output" not in props
    assert "boom" in props["dapr.workflow.failure.error_message"]
    assert props["dapr.workflow.failure.error_type"]
    assert all(isinstance(v, str) for v in props.values())


async def test_pause_and_resume(env: Env) -> None:
    wid = iid()
    await post(env.client, f"{V1}/approval/start?instanceID={wid}", 1)
    await wait_until(until_status(env.client, wid, "RUNNING"))
    assert await post(env.client, f"{V1}/{wid}/pause") == (202, None)
    await wait_until(until_status(env.client, wid, "SUSPENDED"))
    # an event raised while suspended waits for the resume
    assert (await post(env.client, f"{V1}/{wid}/raiseEvent/approve", "later"))[0] == 202
    assert await post(env.client, f"/v1.0-alpha1/workflows/dapr/{wid}/resume") == (202, None)
    done = await wait_until(until_status(env.client, wid, "COMPLETED"))
    assert done["properties"]["dapr.workflow.output"] == '{"order": 1, "decision": "later"}'


async def test_terminate_is_recursive(env: Env) -> None:
    wid = iid()
    await post(env.client, f"{V1}/parent/start?instanceID={wid}")
    child = f"{wid}-child"
    await wait_until(until_status(env.client, child, "RUNNING"))
    assert await post(env.client, f"{V1}/{wid}/terminate") == (202, None)
    await wait_until(until_status(env.client, wid, "TERMINATED"))
    await wait_until(until_status(env.client, child, "TERMINATED"))


async def test_purge_only_finished_instances(env: Env) -> None:
    wid = iid()
    await post(env.client, f"{V1}/sleepy/start?instanceID={wid}")
    await wait_until(until_status(env.client, wid, "RUNNING"))
    code, body = await post(env.client, f"{V1}/{wid}/purge")
    assert code == 409 and error("ERR_PURGE_WORKFLOW")(body)
    assert (await status_of(env.client, wid))["runtimeStatus"] == "RUNNING"
    await post(env.client, f"{V1}/{wid}/terminate")
    await wait_until(until_status(env.client, wid, "TERMINATED"))
    assert await post(env.client, f"{V1}/{wid}/purge") == (202, None)
    assert (await get(env.client, f"{V1}/{wid}"))[0] == 404
    code, body = await get(env.client, f"/v1.0-alpha1/workflows/tether/{wid}/history")
    assert code == 404 and error("ERR_INSTANCE_ID_NOT_FOUND")(body)


async def test_pending_until_a_worker_picks_the_instance_up(env: Env) -> None:
    # the names stay registered after the worker stops (their registration has a TTL)
    await env.stop_runtime()
    wid = iid()
    assert (await post(env.client, f"{V1}/greet/start?instanceID={wid}", "p"))[0] == 202
    assert (await status_of(env.client, wid))["runtimeStatus"] == "PENDING"
    await env.start_runtime()
    await wait_until(until_status(env.client, wid, "COMPLETED"))


# --- Tether's list and history ----------------------------------------------------------------

async def test_history_lists_the_events(env: Env) -> None:
    wid = iid()
    await post(env.client, f"{V1}/greet/start?instanceID={wid}", "h")
    await wait_until(until_status(env.client, wid, "COMPLETED"))
    code, body = await get(env.client, f"/v1.0-alpha1/workflows/tether/{wid}/history")
    assert code == 200 and body["instanceID"] == wid
    types = [e["type"] for e in body["events"]]
    assert types[types.index("ExecutionStarted")] == "ExecutionStarted"
    assert types.count("TaskScheduled") == 2 and types.count("TaskCompleted") == 2
    assert types[-1] == "ExecutionCompleted"
    scheduled = [e for e in body["events"] if e["type"] == "TaskScheduled"]
    assert [(e["task_id"], e["name"]) for e in scheduled] == [(0, "hello"), (1, "hello")]
    assert all("timestamp" in e for e in body["events"])


async def test_list_filters_and_pages(env: Env) -> None:
    waiting = [iid() for _ in range(3)]
    for w in waiting:
        await post(env.client, f"{V1}/approval/start?instanceID={w}", 0)
    done = iid()
    await post(env.client, f"{V1}/greet/start?instanceID={done}", "l")
    await wait_until(until_status(env.client, done, "COMPLETED"))
    for w in waiting:
        await wait_until(until_status(env.client, w, "RUNNING"))

    code, body = await get(env.client, "/v1.0-alpha1/workflows/tether/instances")
    assert code == 200
    listed = {i["instanceID"]: i for i in body["instances"]}
    assert set(listed) == {*waiting, done}
    assert listed[done]["runtimeStatus"] == "COMPLETED"
    assert set(listed[done]) == {"instanceID", "workflowName", "createdAt", "lastUpdatedAt",
                                 "runtimeStatus"}
    created = [datetime.fromisoformat(i["createdAt"].replace("Z", "+00:00"))
               for i in body["instances"]]
    assert created == sorted(created, reverse=True)  # newest first

    _, body = await get(env.client, "/v1.0-alpha1/workflows/tether/instances?status=running")
    assert {i["instanceID"] for i in body["instances"]} == set(waiting)
    _, body = await get(env.client, "/v1.0-alpha1/workflows/tether/instances?name=greet")
    assert [i["instanceID"] for i in body["instances"]] == [done]

    seen: list[str] = []
    token = ""
    while True:
        _, page = await get(env.client, "/v1.0-alpha1/workflows/tether/instances?limit=2"
                            f"&continuationToken={token}")
        assert len(page["instances"]) <= 2
        seen += [i["instanceID"] for i in page["instances"]]
        token = page.get("continuationToken", "")
        if not token:
            break
    assert sorted(seen) == sorted([*waiting, done])


@pytest.mark.parametrize("query", [
    "status=DONE", "limit=0", "limit=abc", "limit=100000",
    "limit=%C2%B2", "limit=%D9%A3",  # "²" and an Arabic 3: digits to str.isdigit, not int()
    "continuationToken=garbage", "continuationToken=%C2%B2", "continuationToken=" + "9" * 13,
])
async def test_list_bad_query_is_400(env: Env, query: str) -> None:
    code, body = await get(env.client, f"/v1.0-alpha1/workflows/tether/instances?{query}")
    assert code == 400 and error("ERR_MALFORMED_REQUEST")(body)


# --- the block in the sidecar -----------------------------------------------------------------

def test_the_sidecar_builds_the_workflow_block() -> None:
    assert workflow_block in BLOCK_FACTORIES


async def test_an_unreachable_store_is_a_500_and_the_next_call_retries(tmp_path: Path) -> None:
    comps = [Component(name="wf", type="state.sqlite", metadata={
        "connectionString": str(tmp_path / "missing-dir" / "deeper" / "wf.db"),
        "actorStateStore": "true"})]
    (tmp_path / "missing-dir").write_text("a file where a folder should be")
    registry = PubSubRegistry([Component(name="pubsub", type="pubsub.tether.embedded",
                                         metadata={"path": str(tmp_path / "b.db")})])
    block = workflow_block(BlockContext("app", comps, registry))
    app = create_app(registry, app_id="app", components=comps, blocks=[block])
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        code, body = await post(client, f"{V1}/greet/start", "x")
        assert code == 500 and error("ERR_START_WORKFLOW")(body)
        code, body = await get(client, f"{V1}/some-id")
        assert code == 500 and error("ERR_GET_WORKFLOW")(body)
