"""``tether workflow ...`` as a real command against a running sidecar (the workflow block
on the embedded broker and SQLite, a WorkflowRuntime running the instances)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.workflows.api_env import Env, running
from tests.workflows.api_wait import wait_until
from tether.cli.run import free_port

WAIT = 120.0  # a ceiling against hangs, not a timing assertion


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running(tmp_path) as e:
        yield e


async def tether(*args: str, port: int | None = None, env: dict[str, str] | None = None
                 ) -> Result:
    """Run the real command (asynchronously: the sidecar answers from this event loop)."""
    where = ["--http-port", str(port)] if port is not None else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tether.cli.main", "workflow", *args, *where,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), WAIT)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def port_of(env: Env) -> int:
    port = env.client.server.port
    assert port is not None
    return port


def iid() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


async def test_start_wait_shows_the_status_view(env: Env) -> None:
    wid = iid()
    r = await tether("start", "greet", "--id", wid, "--input", '"ann"', "--wait",
                     port=port_of(env))
    assert r.code == 0, r.err
    lines = dict(line.split(None, 1) for line in r.out.splitlines())
    assert lines["instance"] == wid and lines["workflow"] == "greet"
    assert lines["status"] == "COMPLETED"
    assert lines["input"] == '"ann"' and lines["output"] == '"hello hello ann"'
    assert lines["custom"] == '"greeting"'
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", lines["created"])


async def test_start_then_status_as_json(env: Env) -> None:
    wid = iid()
    r = await tether("start", "greet", "--id", wid, "--input", '"bo"', "-o", "json",
                     port=port_of(env))
    assert r.code == 0 and r.json() == {"instanceID": wid}

    async def completed() -> Any:
        s = await tether("status", wid, "--output", "json", port=port_of(env))
        assert s.code == 0, s.err
        body = s.json()
        return body if body["runtimeStatus"] == "COMPLETED" else None

    body = await wait_until(completed)
    assert body["instanceID"] == wid and body["workflowName"] == "greet"
    assert body["properties"]["dapr.workflow.output"] == '"hello hello bo"'


async def test_start_text_says_the_instance(env: Env) -> None:
    r = await tether("start", "approval", port=port_of(env))
    assert r.code == 0, r.err
    found = re.fullmatch(r"started workflow 'approval': instance (\S+)\n", r.out)
    assert found and uuid.UUID(found.group(1))


async def test_raise_pause_resume_terminate_purge(env: Env) -> None:
    port = port_of(env)
    wid = iid()
    assert (await tether("start", "approval", "--id", wid, "--input", "5", port=port)).code == 0
    await wait_until(lambda: _status_is(env, wid, "RUNNING"))
    r = await tether("pause", wid, port=port)
    assert (r.code, r.out) == (0, f"paused instance {wid}\n")
    await wait_until(lambda: _status_is(env, wid, "SUSPENDED"))
    r = await tether("resume", wid, "-o", "json", port=port)
    assert r.code == 0 and r.json() == {"instanceID": wid, "accepted": True}
    await wait_until(lambda: _status_is(env, wid, "RUNNING"))
    r = await tether("raise", wid, "approve", "--data", '{"ok": true}', port=port)
    assert (r.code, r.out) == (0, f"raised event 'approve' to instance {wid}\n")
    await wait_until(lambda: _status_is(env, wid, "COMPLETED"))
    status = await tether("status", wid, "-o", "json", port=port)
    assert status.json()["properties"]["dapr.workflow.output"] == \
        '{"order": 5, "decision": {"ok": true}}'
    r = await tether("purge", wid, port=port)
    assert (r.code, r.out) == (0, f"purged instance {wid}\n")
    r = await tether("status", wid, port=port)
    assert r.code == 1 and "ERR_INSTANCE_ID_NOT_FOUND" in r.err

    other = iid()
    await tether("start", "sleepy", "--id", other, port=port)
    await wait_until(lambda: _status_is(env, other, "RUNNING"))
    r = await tether("purge", other, port=port)
    assert r.code == 1 and "409" in r.err and "ERR_PURGE_WORKFLOW" in r.err
    r = await tether("terminate", other, port=port)
    assert (r.code, r.out) == (0, f"terminated instance {other}\n")
    await wait_until(lambda: _status_is(env, other, "TERMINATED"))


async def _status_is(env: Env, wid: str, wanted: str) -> bool:
    # polled over HTTP in-process: a command per poll would only slow a loaded machine down
    resp = await env.client.get(f"/v1.0/workflows/dapr/{wid}")
    return resp.status == 200 and (await resp.json())["runtimeStatus"] == wanted


async def test_history_is_one_readable_line_per_event(env: Env) -> None:
    port = port_of(env)
    wid = iid()
    await tether("start", "greet", "--id", wid, "--input", '"h"', "--wait", port=port)
    r = await tether("history", wid, port=port)
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\s+[+-]\d+\.\d{3}s  "
    assert all(re.match(stamp, line) for line in lines), lines
    events = [line for line in lines if not line.endswith("-- step")]
    kinds = [re.sub(stamp, "", line).split()[0] for line in events]
    assert kinds == ["ExecutionStarted", "TaskScheduled", "TaskCompleted", "TaskScheduled",
                     "TaskCompleted", "ExecutionCompleted"]
    assert "workflow 'greet' input=\"h\"" in events[0]
    assert "#0 activity 'hello' input=\"h\"" in events[1]
    assert "#0 activity 'hello' result=\"hello h\"" in events[2]  # completions name the task
    assert "#1 activity 'hello' result=\"hello hello h\"" in events[4]
    assert "COMPLETED output=\"hello hello h\"" in events[5]

    j = await tether("history", wid, "-o", "json", port=port)
    body = j.json()
    assert body["instanceID"] == wid
    assert [e["type"] for e in body["events"] if e["type"] != "OrchestratorStarted"] == kinds


async def test_history_cuts_long_payloads(env: Env) -> None:
    port = port_of(env)
    wid = iid()
    await tether("start", "greet", "--id", wid, "--input", json.dumps("x" * 500), "--wait",
                 port=port)
    r = await tether("history", wid, "--width", "20", port=port)
    assert r.code == 0 and "x" * 30 not in r.out and "..." in r.out


async def test_list_table_and_json(env: Env) -> None:
    port = port_of(env)
    done, waiting = iid(), iid()
    await tether("start", "greet", "--id", done, "--input", '"l"', "--wait", port=port)
    await tether("start", "approval", "--id", waiting, port=port)
    await wait_until(lambda: _status_is(env, waiting, "RUNNING"))
    r = await tether("list", port=port)
    assert r.code == 0, r.err
    header, *rows = r.out.splitlines()
    assert header.split() == ["INSTANCE", "WORKFLOW", "STATUS", "CREATED", "UPDATED"]
    table = {row.split()[0]: row.split()[1:3] for row in rows}
    assert table == {done: ["greet", "COMPLETED"], waiting: ["approval", "RUNNING"]}

    r = await tether("list", "--status", "RUNNING", "-o", "json", port=port)
    assert [i["instanceID"] for i in r.json()["instances"]] == [waiting]
    r = await tether("list", "--limit", "1", "-o", "json", port=port)
    page = r.json()
    assert len(page["instances"]) == 1 and page["continuationToken"]
    r = await tether("list", "--limit", "1", "--continuation-token", page["continuationToken"],
                     "-o", "json", port=port)
    assert {i["instanceID"] for i in r.json()["instances"]} | \
        {page["instances"][0]["instanceID"]} == {done, waiting}


async def test_errors_exit_1_with_the_sidecar_message(env: Env) -> None:
    port = port_of(env)
    r = await tether("status", "nope", port=port)
    assert r.code == 1 and "404 ERR_INSTANCE_ID_NOT_FOUND" in r.err and r.out == ""
    r = await tether("start", "nobody-hosts-this", port=port)
    assert r.code == 1 and "ERR_START_WORKFLOW" in r.err and "not registered" in r.err
    wid = iid()
    await tether("start", "approval", "--id", wid, port=port)
    r = await tether("start", "approval", "--id", wid, port=port)
    assert r.code == 1 and "409 ERR_START_WORKFLOW" in r.err


async def test_bad_arguments_exit_2(env: Env) -> None:
    r = await tether("start", "greet", "--input", "not json", port=port_of(env))
    assert r.code == 2 and "--input must be JSON" in r.err
    r = await tether("raise", "x", "approve", "--data", "{", port=port_of(env))
    assert r.code == 2 and "--data must be JSON" in r.err
    r = await tether()
    assert r.code == 2


async def test_address_from_the_environment_and_unreachable_sidecar(env: Env) -> None:
    wid = iid()
    r = await tether("start", "greet", "--id", wid, "--wait",
                     env={"TETHER_HTTP_PORT": str(port_of(env)), "DAPR_HTTP_ENDPOINT": ""})
    assert r.code == 0 and "COMPLETED" in r.out, r.err
    r = await tether("status", wid, "--address", f"http://127.0.0.1:{port_of(env)}")
    assert r.code == 0 and wid in r.out
    r = await tether("status", wid, port=free_port())
    assert r.code == 1 and "cannot reach the sidecar" in r.err


async def test_every_command_prints_times_in_one_format(env: Env) -> None:
    port = port_of(env)
    wid = iid()
    await tether("start", "greet", "--id", wid, "--input", '"t"', "--wait", port=port)
    one = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    status = (await tether("status", wid, "-o", "json", port=port)).json()
    listed = (await tether("list", "-o", "json", port=port)).json()["instances"]
    history = (await tether("history", wid, "-o", "json", port=port)).json()["events"]
    times = [status["createdAt"], status["lastUpdatedAt"]]
    times += [i[k] for i in listed for k in ("createdAt", "lastUpdatedAt")]
    times += [e["timestamp"] for e in history]
    assert times and all(one.match(t) for t in times), times
    table = (await tether("list", port=port)).out.splitlines()[1:]
    assert all(one.match(row.split()[3]) and one.match(row.split()[4]) for row in table), table


def test_a_reader_that_goes_away_ends_the_command_quietly() -> None:
    # `tether ... -o json | head`: the pipe closes before the output is written
    script = (
        "import os, sys\n"
        "r, w = os.pipe(); os.close(r); os.dup2(w, 1)\n"
        "from tether.cli.main import main\n"
        "sys.exit(main(['broker', 'check', '--broker', 'memory://pipe', '--count', '1',"
        " '--json']))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=WAIT)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr
