"""bindings.http against an aiohttp server started by the test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from tests.bindings.components.yaml_a import build, output
from tests.servers import free_port
from tether.platform.bindings.binding import (
    BindingFailedError,
    BindingRequest,
    OutputBinding,
)
from tether.platform.bindings.registry import BindingConfigError


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    answer = {"method": request.method, "path": request.path_qs,
              "headers": dict(request.headers), "body": body.decode()}
    response = web.json_response(answer, headers={"X-Served-By": "test"})
    response.headers.add("X-Multi", "a")
    response.headers.add("X-Multi", "b")
    return response


async def status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="status body")


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(1)  # past the 200ms responseTimeout of the test
    return web.Response(text="late")


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_route("*", "/slow", slow)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(server: str) -> AsyncIterator[OutputBinding]:
    binding = output("bindings.http", url=server + "/base")
    await binding.start()
    try:
        yield binding
    finally:
        await binding.close()


async def test_create_is_a_post_with_the_data_and_default_headers(client: OutputBinding) -> None:
    response = await client.invoke(BindingRequest("create", b'{"a":1}'))
    assert response.data is not None
    seen = json.loads(response.data)
    assert seen["method"] == "POST" and seen["path"] == "/base" and seen["body"] == '{"a":1}'
    assert seen["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert seen["headers"]["Accept"] == "application/json; charset=utf-8"
    assert response.metadata["statusCode"] == "200"
    assert response.metadata["status"] == "200 OK"
    assert response.metadata["X-Served-By"] == "test"
    assert response.metadata["X-Multi"] == "a, b"
    assert response.metadata["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("operation", ["get", "head", "post", "put", "patch", "delete",
                                       "options", "trace"])
async def test_each_verb(client: OutputBinding, operation: str) -> None:
    response = await client.invoke(BindingRequest(operation, b"payload"))
    assert response.metadata["statusCode"] == "200"
    if operation == "head":
        assert not response.data
        return
    assert response.data is not None
    seen = json.loads(response.data)
    assert seen["method"] == operation.upper()
    # only the verbs that carry a body send the data
    assert seen["body"] == ("payload" if operation in ("post", "put", "patch") else "")


async def test_path_is_appended_and_capitalised_metadata_become_headers(
    client: OutputBinding,
) -> None:
    response = await client.invoke(BindingRequest("post", b"<a/>", {
        "path": "/orders/7?x=1", "Content-Type": "application/xml", "X-Token": "t",
        "lowercase": "not a header", "traceparent":
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    }))
    assert response.data is not None
    seen = json.loads(response.data)
    assert seen["path"] == "/base/orders/7?x=1"
    assert seen["headers"]["Content-Type"] == "application/xml"
    assert seen["headers"]["X-Token"] == "t"
    assert "lowercase" not in {k.lower() for k in seen["headers"]}
    assert seen["headers"]["traceparent"].startswith("00-0af7")


async def test_non_2xx_fails_unless_error_if_not_2xx_is_false(client: OutputBinding) -> None:
    with pytest.raises(BindingFailedError, match="status code 404"):
        await client.invoke(BindingRequest("get", metadata={"path": "/../status/404"}))
    response = await client.invoke(BindingRequest("get", metadata={
        "path": "/../status/404", "errorIfNot2XX": "false"}))
    assert response.metadata["statusCode"] == "404"
    assert response.metadata["status"] == "404 Not Found"
    assert response.data == b"status body"


async def test_component_error_if_not_2xx_false(server: str) -> None:
    binding = output("bindings.http", url=server + "/status/503", errorIfNot2XX="false")
    await binding.start()
    try:
        response = await binding.invoke(BindingRequest("get"))
        assert response.metadata["statusCode"] == "503"
    finally:
        await binding.close()


async def test_unreachable_server_and_timeout_fail(server: str) -> None:
    down = output("bindings.http", url=f"http://127.0.0.1:{free_port()}")
    await down.start()
    try:
        with pytest.raises(BindingFailedError):
            await down.invoke(BindingRequest("get"))
    finally:
        await down.close()
    slow_one = output("bindings.http", url=server + "/slow", responseTimeout="200ms")
    await slow_one.start()
    try:
        with pytest.raises(BindingFailedError, match="no answer"):
            await slow_one.invoke(BindingRequest("get"))
    finally:
        await slow_one.close()


async def test_security_token_header(server: str) -> None:
    binding = output("bindings.http", url=server, securityToken="s3cret",
                     securityTokenHeader="X-Api-Key")
    await binding.start()
    try:
        response = await binding.invoke(BindingRequest("get"))
        assert response.data is not None
        assert json.loads(response.data)["headers"]["X-Api-Key"] == "s3cret"
    finally:
        await binding.close()


def test_metadata_errors_name_the_field() -> None:
    with pytest.raises(BindingConfigError, match="url is required"):
        build("bindings.http", other="x")
    with pytest.raises(BindingConfigError, match="url 'ftp://x' must be an http"):
        build("bindings.http", url="ftp://x")
    with pytest.raises(BindingConfigError, match="responseTimeout"):
        build("bindings.http", url="http://x", responseTimeout="soon")
    with pytest.raises(BindingConfigError, match="mtlsRootCA is not supported"):
        build("bindings.http", url="http://x", mtlsRootCA="pem")
