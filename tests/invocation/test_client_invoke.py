"""``tether.Client.invoke_method`` (sync and async) and ``tether invoke`` against real
processes: ``tether run -f`` with a caller and a target app (tests/invocation/target_app.py,
which echoes what it received), on the embedded broker and Redis."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tether
from tests.invocation.test_run_invoke import ROOT, Run, component, headers_of
from tether.cli.run import free_port
from tether.sdk.client import InvokeMethodError, InvokeMethodResponse, TetherApiError
from tether.sdk.methods import MethodRequest, MethodResponse

BACKENDS = ("embedded", "redis")


@pytest.fixture(scope="module", params=BACKENDS)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp(f"client-invoke-{request.param}")
    (root / "components").mkdir()
    (root / "components" / "pubsub.yaml").write_text(component(request.param, root, request))
    started = Run(root, request.param)
    try:
        started.until_served()
        yield started
    finally:
        log = started.process.stop()
        assert "Traceback" not in log, log


@pytest.fixture
def client(run: Run) -> Iterator[tether.Client]:
    with tether.Client(run.url("")) as client:
        yield client


def test_invoke_method_sends_verb_path_query_headers_and_body(client: tether.Client) -> None:
    body = bytes(range(256)) * 4
    answer = client.invoke_method(
        "cart", "orders/a%2Fb", body, content_type="application/octet-stream",
        metadata=(("x-one", "1"), ("x-two", "2")), http_verb="put",
        http_querystring=(("k", "v 1"), ("k", "w")),
    )
    assert isinstance(answer, InvokeMethodResponse)
    assert answer.status_code == 200
    assert answer.content_type == "application/json"
    echo = answer.json()
    assert echo["method"] == "PUT"
    assert echo["raw_path"] == "/orders/a%2Fb?k=v%201&k=w"
    assert echo["sha256"] == hashlib.sha256(body).hexdigest()
    seen = headers_of(echo)
    assert seen["x-one"] == "1" and seen["x-two"] == "2"
    assert seen["content-type"] == "application/octet-stream"
    assert seen["dapr-caller-app-id"] == "caller"
    assert "tether-invoke-timeout" not in seen
    # the answer's headers as Dapr's SDK gives them: each name to its list of values
    assert answer.headers["Set-Cookie"] == ["a=1", "b=2"]
    assert answer.headers["x-answer"] == ["yes"]
    assert json.loads(answer.text()) == echo


def test_invoke_method_defaults_follow_daprs_sdk(client: tether.Client) -> None:
    echo = client.invoke_method("cart", "ready").json()
    assert echo["method"] == "GET"
    assert echo["length"] == 0
    assert echo["content_type"] == "application/json"
    text = client.invoke_method("cart", "orders", "héllo", metadata={"x-m": "v"},
                                http_verb="POST").json()
    assert text["method"] == "POST" and text["length"] == len("héllo".encode())
    assert headers_of(text)["x-m"] == "v"


def test_a_method_with_a_query_in_its_name_keeps_it(client: tether.Client) -> None:
    echo = client.invoke_method("cart", "v1/orders?id=7", http_querystring={"x": "y"}).json()
    assert echo["raw_path"] == "/v1/orders?id=7&x=y"


def test_a_non_2xx_answer_of_the_app_raises_with_the_answer(client: tether.Client) -> None:
    with pytest.raises(InvokeMethodError) as caught:
        client.invoke_method("cart", "orders", http_querystring={"status": "404"})
    error = caught.value
    assert isinstance(error, TetherApiError)
    assert error.status == 404 and error.error_code is None
    assert error.response.status_code == 404
    assert error.response.json()["raw_path"] == "/orders?status=404"
    assert error.response.headers["x-answer"] == ["yes"]


def test_an_unknown_app_raises_err_direct_invoke(client: tether.Client) -> None:
    with pytest.raises(InvokeMethodError) as caught:
        client.invoke_method("no-such-app", "orders", timeout=3)
    assert caught.value.status == 500
    assert caught.value.error_code == "ERR_DIRECT_INVOKE"


def test_timeout_is_the_calls_deadline_at_the_sidecar(client: tether.Client) -> None:
    with pytest.raises(InvokeMethodError) as caught:
        client.invoke_method("cart", "slow", http_querystring={"seconds": "30", "id": "t"},
                             timeout=0.5)
    assert caught.value.status == 504
    assert caught.value.error_code == "ERR_DIRECT_INVOKE"
    with pytest.raises(ValueError):
        client.invoke_method("cart", "orders", timeout=0)


def test_the_async_client_has_the_same_method(run: Run) -> None:
    async def main() -> list[InvokeMethodResponse]:
        async with tether.AsyncClient(run.url("")) as client:
            calls = [client.invoke_method("cart", f"n/{i}", str(i), http_verb="POST")
                     for i in range(10)]
            answers = await asyncio.gather(*calls)
            with pytest.raises(InvokeMethodError) as caught:
                await client.invoke_method("cart", "x", http_querystring={"status": "503"})
            assert caught.value.status == 503
            return answers

    answers = asyncio.run(main())
    assert [a.json()["raw_path"] for a in answers] == [f"/n/{i}" for i in range(10)]


def test_a_sidecar_that_is_not_there_raises_sidecar_unavailable() -> None:
    with tether.Client(f"http://127.0.0.1:{free_port()}") as client, \
            pytest.raises(tether.sdk.client.SidecarUnavailableError):
        client.invoke_method("cart", "orders")


# --- tether invoke -------------------------------------------------------------------------
def tether_invoke(*args: str, env: dict[str, str] | None = None,
                  stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    for name in ("DAPR_HTTP_ENDPOINT", "TETHER_HTTP_PORT"):
        environ.pop(name, None)
    return subprocess.run([sys.executable, "-m", "tether.cli.main", "invoke", *args],
                          capture_output=True, env=environ, input=stdin, timeout=120)


def test_the_cli_prints_the_answer_and_exits_0(run: Run) -> None:
    port = str(run.ports["caller"])
    done = tether_invoke("--app-id", "cart", "--method", "orders/7", "-d", '{"a":1}',
                         "--dapr-http-port", port, "-H", "x-h: v")
    assert done.returncode == 0, done.stderr
    echo = json.loads(done.stdout)
    assert echo["method"] == "POST" and echo["raw_path"] == "/orders/7"
    assert echo["length"] == len(b'{"a":1}') and headers_of(echo)["x-h"] == "v"
    assert b"App invoked successfully" in done.stderr
    # the sidecar from DAPR_HTTP_PORT, as tether.Client finds it; --verb as dapr invoke
    done = tether_invoke("-a", "cart", "-m", "orders", "--verb", "delete",
                         env={"DAPR_HTTP_PORT": port})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["method"] == "DELETE"


def test_the_cli_sends_a_data_file(run: Run, tmp_path: Path) -> None:
    body = os.urandom(5000)
    (tmp_path / "body.bin").write_bytes(body)
    done = tether_invoke("-a", "cart", "-m", "up", "-f", str(tmp_path / "body.bin"),
                         "--dapr-http-port", str(run.ports["caller"]))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sha256"] == hashlib.sha256(body).hexdigest()


def test_the_cli_exits_1_on_a_failed_call(run: Run) -> None:
    port = str(run.ports["caller"])
    done = tether_invoke("-a", "cart", "-m", "orders?status=500", "--dapr-http-port", port)
    assert done.returncode == 1 and done.stdout == b""
    assert b"error invoking app cart: 500" in done.stderr
    done = tether_invoke("-a", "nobody", "-m", "orders", "--dapr-http-port", port,
                         "--timeout", "3")
    assert done.returncode == 1 and b"ERR_DIRECT_INVOKE" in done.stderr
    done = tether_invoke("-a", "cart", "-m", "orders", "--dapr-http-port", str(free_port()))
    assert done.returncode == 1 and b"cannot reach the sidecar" in done.stderr
    done = tether_invoke("-a", "cart", "-m", "orders", "-H", "no-colon",
                         "--dapr-http-port", port)
    assert done.returncode == 2


# --- @app.method: an in-process app answering calls ----------------------------------------
def test_app_methods_answer_calls_from_a_sidecar(run: Run) -> None:
    app = tether.App("inproc", resources_path=run.root / "components")
    seen: list[MethodRequest] = []

    @app.method("orders", methods=["POST"])
    async def orders(request: MethodRequest) -> Any:
        seen.append(request)
        return {"got": request.json(), "query": list(request.query),
                "caller": request.caller, "x": request.header("x-h")}

    @app.method("v1/text")
    def text(request: MethodRequest) -> str:  # a sync handler runs in a thread
        return f"{request.verb} {request.text()}"

    @app.method("teapot")
    async def teapot(request: MethodRequest) -> MethodResponse:
        return MethodResponse(b"\x00short", status=418, headers={"x-pot": "yes"},
                              content_type="application/x-tea")

    @app.method("broken")
    async def broken(request: MethodRequest) -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        async with app.run(), tether.AsyncClient(run.url("")) as client:
            await until_answered(client)
            answer = await client.invoke_method(
                "inproc", "orders", '{"n": 1}', http_verb="POST", metadata={"x-h": "v"},
                http_querystring=(("a", "1"), ("a", "2")))
            assert answer.status_code == 200 and answer.content_type == "application/json"
            assert answer.json() == {"got": {"n": 1}, "query": [["a", "1"], ["a", "2"]],
                                     "caller": "caller", "x": "v"}
            plain = await client.invoke_method("inproc", "v1/text", "hi", http_verb="PUT")
            assert plain.text() == "PUT hi" and plain.content_type == "text/plain"
            with pytest.raises(InvokeMethodError) as caught:
                await client.invoke_method("inproc", "teapot")
            tea = caught.value.response
            assert (tea.status_code, tea.data, tea.content_type) == (
                418, b"\x00short", "application/x-tea")
            assert tea.headers["x-pot"] == ["yes"]
            for method, verb, status in (("orders", "GET", 405), ("nothing", "GET", 404),
                                         ("broken", "GET", 500)):
                with pytest.raises(InvokeMethodError) as caught:
                    await client.invoke_method("inproc", method, http_verb=verb)
                assert caught.value.status == status, method
                assert caught.value.error_code == "ERR_DIRECT_INVOKE"

    asyncio.run(main())
    assert len(seen) == 1 and seen[0].verb == "POST" and seen[0].method == "orders"


async def until_answered(client: tether.AsyncClient) -> None:
    """Calls reach the app once its worker joined group ``inproc`` (unknown before)."""
    for _ in range(300):
        try:
            await client.invoke_method("inproc", "v1/text", timeout=2)
            return
        except InvokeMethodError:
            await asyncio.sleep(0.2)
    raise AssertionError("the in-process app never answered")
