"""DAPR_API_TOKEN enforced as Dapr does, and the listen addresses (docs/security.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.platform.test_run import WAIT, finish, tether_run, wait_for, wait_for_sidecar
from tests.servers import free_port
from tether.brokers.memory import _named_stores
from tether.cli.main import build_parser
from tether.cli.run.runfile import RunFileError, parse_run_file
from tether.platform import env
from tether.sidecar.server import Sidecar, SidecarError

TOKEN = "s3cret-ä"  # a non-ASCII character: compared as bytes, not refused as a 500

COMPONENTS = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: {pubsub}}}
spec: {{type: pubsub.in-memory, version: v1}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: store}}
spec: {{type: state.in-memory, version: v1}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: local}}
spec:
  type: secretstores.local.file
  version: v1
  metadata: [{{name: secretsFile, value: "{secrets}"}}]
"""

# an in-memory pub/sub's store is named after the component and lives as long as the test
# process: a name of each test's own, dropped at its end
PUBSUB = f"secured-{uuid.uuid4().hex[:8]}"

# (method, path, body): one call of each kind the issue found unprotected, and more
CALLS: list[tuple[str, str, Any]] = [
    ("POST", f"/v1.0/publish/{PUBSUB}/orders", {"n": 1}),
    ("POST", f"/v1.0/publish/bulk/{PUBSUB}/orders",
     [{"entryId": "1", "event": {"n": 2}, "contentType": "application/json"}]),
    ("GET", "/v1.0/metadata", None),
    ("PUT", "/v1.0/metadata/color", "blue"),
    ("GET", "/v1.0/secrets/local/db-pass", None),
    ("GET", "/v1.0/secrets/local/bulk", None),
    ("POST", "/v1.0/state/store", [{"key": "k", "value": "v"}]),
    ("GET", "/v1.0/state/store/k", None),
    ("DELETE", "/v1.0/state/store/k", None),
    ("POST", "/v1.0/shutdown", None),
    # not exempt: only GET of the two health paths is (HEAD and POST are not, as Dapr)
    ("HEAD", "/v1.0/healthz", None),
    ("POST", "/v1.0/healthz", None),
    # checked before routing, as Dapr: an unknown path without the token is 401 too
    ("GET", "/v1.0/nowhere", None),
]


async def start_sidecar(tmp_path: Path, **options: Any) -> Sidecar:
    folder = tmp_path / "resources"
    folder.mkdir(exist_ok=True)
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"db-pass": "pw"}))
    (folder / "components.yaml").write_text(COMPONENTS.format(pubsub=PUBSUB, secrets=secrets))
    sidecar = Sidecar("secured", free_port(), [folder], **options)
    await sidecar.start()
    return sidecar


@pytest.fixture(autouse=True)
def drop_memory_store() -> Iterator[None]:
    yield
    _named_stores.pop(PUBSUB, None)


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Sidecar]:
    sidecar = await start_sidecar(tmp_path, api_token=TOKEN)
    yield sidecar
    await sidecar.stop()


async def call(
    session: aiohttp.ClientSession, sidecar: Sidecar, method: str, path: str, body: Any,
    token: str | None,
) -> tuple[int, bytes]:
    headers = {} if token is None else {"dapr-api-token": token}
    data = body if isinstance(body, str) else (None if body is None else json.dumps(body))
    url = f"http://127.0.0.1:{sidecar.http_port}{path}"
    async with session.request(method, url, data=data, headers=headers) as response:
        return response.status, await response.read()


async def published() -> int:
    """The events on the topic ``orders`` (read from the pub/sub's memory store)."""
    store = _named_stores[PUBSUB]
    partitions = await store.ensure_topic("orders", 1)
    return sum([len(await store.read("orders", p, 0, 10_000)) for p in range(partitions)])


async def state_of(session: aiohttp.ClientSession, sidecar: Sidecar) -> dict[str, Any]:
    """What a refused call must not have changed: events, state, metadata, shutdown."""
    status, body = await call(session, sidecar, "GET", "/v1.0/metadata", None, TOKEN)
    assert status == 200
    saved = await call(session, sidecar, "GET", "/v1.0/state/store/k", None, TOKEN)
    return {
        "extended": json.loads(body)["extended"],
        "events": await published(),
        "state": saved,
        "shutdown": sidecar.shutdown_requested.is_set(),
    }


@pytest.mark.parametrize("token", [None, "wrong", "", TOKEN + "x", TOKEN[:-1]])
async def test_a_call_without_the_right_token_is_401_and_changes_nothing(
    secured: Sidecar, token: str | None
) -> None:
    async with aiohttp.ClientSession() as session:
        before = await state_of(session, secured)
        for method, path, body in CALLS:
            status, answer = await call(session, secured, method, path, body, token)
            assert status == 401, (method, path)
            if method != "HEAD":
                assert json.loads(answer) == {
                    "errorCode": "ERR_API_TOKEN_INVALID", "message": "invalid api token"
                }
        assert await state_of(session, secured) == before
        assert before["shutdown"] is False


async def test_the_right_token_reaches_every_route(secured: Sidecar) -> None:
    async with aiohttp.ClientSession() as session:
        answers = [
            (await call(session, secured, method, path, body, TOKEN))[0]
            for method, path, body in CALLS
        ]
        assert answers == [204, 204, 200, 204, 200, 200, 204, 200, 204, 204, 204, 405, 404]
        assert secured.shutdown_requested.is_set()


async def test_the_health_probes_need_no_token(secured: Sidecar) -> None:
    async with aiohttp.ClientSession() as session:
        for path in ("/v1.0/healthz", "/v1.0/healthz/outbound"):
            for token in (None, "wrong"):
                assert (await call(session, secured, "GET", path, None, token))[0] == 204


async def test_any_header_bytes_get_a_401_not_a_500(secured: Sidecar) -> None:
    # raw bytes no text decoding can equal the token: latin-1, invalid UTF-8, a lone surrogate
    for raw in (b"s3cret-\xe4", b"\xff\xfe", b"\xed\xa0\x80"):
        reader, writer = await asyncio.open_connection("127.0.0.1", secured.http_port)
        writer.write(b"GET /v1.0/metadata HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                     b"dapr-api-token: " + raw + b"\r\n\r\n")
        status_line = await reader.readline()
        writer.close()
        assert status_line.split()[1] == b"401", raw


async def test_without_a_token_every_route_is_open(tmp_path: Path) -> None:
    sidecar = await start_sidecar(tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            status, _ = await call(session, sidecar, "GET", "/v1.0/metadata", None, "anything")
            assert status == 200
            status, _ = await call(session, sidecar, "POST", f"/v1.0/publish/{PUBSUB}/t", {}, None)
            assert status == 204
    finally:
        await sidecar.stop()


def test_the_token_is_read_from_daprs_variable() -> None:
    assert env.dapr_api_token({"DAPR_API_TOKEN": "t"}) == "t"
    assert env.dapr_api_token({"DAPR_API_TOKEN": ""}) is None


# --- listen addresses ---------------------------------------------------------------------------


async def test_the_api_listens_on_every_address_given(tmp_path: Path) -> None:
    sidecar = await start_sidecar(tmp_path, listen_addresses=("127.0.0.1", "127.0.0.2"))
    try:
        async with aiohttp.ClientSession() as session:
            for host in ("127.0.0.1", "127.0.0.2"):
                url = f"http://{host}:{sidecar.http_port}/v1.0/healthz"
                async with session.get(url) as response:
                    assert response.status == 204
    finally:
        await sidecar.stop()


async def test_an_address_that_cannot_listen_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: it cannot be bound
    caplog.set_level(logging.INFO, logger="tether.sidecar.server")
    sidecar = await start_sidecar(tmp_path, listen_addresses=("127.0.0.1", "192.0.2.1"))
    try:
        assert f"cannot listen on 192.0.2.1:{sidecar.http_port}" in caplog.text
        # asked to go beyond loopback without a token: said loudly
        assert "listens on 192.0.2.1 without DAPR_API_TOKEN" in caplog.text
        assert f"HTTP API on http://127.0.0.1:{sidecar.http_port} (API token not set)" in (
            caplog.text)
    finally:
        await sidecar.stop()


async def test_no_address_that_can_listen_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SidecarError, match=r"on 192\.0\.2\.1:\d+: .*; \[::ffff:192\.0\.2\.2\]"):
        await start_sidecar(tmp_path, listen_addresses=("192.0.2.1", "::ffff:192.0.2.2"))


def test_the_flag_takes_daprs_comma_separated_list() -> None:
    parser = build_parser()
    args = parser.parse_args(["run", "-a", "x", "--dapr-listen-addresses", "127.0.0.1, [::1]"])
    assert args.listen_addresses == ("127.0.0.1", "::1")
    assert parser.parse_args(["run", "-a", "x"]).listen_addresses == ("127.0.0.1",)


def test_an_empty_address_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "-a", "x", "--dapr-listen-addresses", "127.0.0.1,"])
    assert "listen addresses must be comma-separated addresses" in capsys.readouterr().err


def test_a_run_file_sets_them_in_common_or_per_app(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    data = {
        "version": 1,
        "common": {"apiListenAddresses": "127.0.0.1,127.0.0.2"},
        "apps": [{"appID": "a", "appDirPath": "a"},
                 {"appID": "b", "appDirPath": "b", "apiListenAddresses": "0.0.0.0"}],
    }
    a, b = parse_run_file(data, tmp_path / "dapr.yaml")
    assert a.listen_addresses == ("127.0.0.1", "127.0.0.2")
    assert b.listen_addresses == ("0.0.0.0",)
    del data["common"]
    assert parse_run_file(data, tmp_path / "dapr.yaml")[0].listen_addresses == ("127.0.0.1",)
    data["common"] = {"apiListenAddresses": ["127.0.0.1"]}
    with pytest.raises(RunFileError, match=r"common\.apiListenAddresses must be comma-separated"):
        parse_run_file(data, tmp_path / "dapr.yaml")


# --- tether run, as real processes --------------------------------------------------------------

# publishes through tether.Client (which sends $DAPR_API_TOKEN), then runs until stopped
CLIENT_APP = """
import os, signal, sys, time, tether
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
with tether.Client() as client:
    client.publish("pubsub", "t", {"from": os.environ["APP_ID"]})
open("published", "w").write(os.environ["DAPR_API_TOKEN"])
while True:
    time.sleep(1)
"""


def status_of(method: str, url: str, token: str | None = None) -> int:
    request = urllib.request.Request(url, data=b"{}" if method != "GET" else None, method=method)
    if token is not None:
        request.add_header("dapr-api-token", token)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@contextmanager
def killed_at_exit(proc: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_tether_run_enforces_the_token_of_its_environment_on_every_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DAPR_API_TOKEN", "run-token")
    port = free_port()
    with killed_at_exit(tether_run("--app-id", "solo", "-H", str(port), "--dapr-listen-addresses",
                                   "127.0.0.1,127.0.0.2", cwd=tmp_path)) as proc:
        check_solo(proc, port)


def check_solo(proc: subprocess.Popen[str], port: int) -> None:
    wait_for_sidecar(port, proc)
    for host in ("127.0.0.1", "127.0.0.2"):
        base = f"http://{host}:{port}/v1.0"
        assert status_of("GET", f"{base}/healthz") == 204
        assert status_of("POST", f"{base}/publish/pubsub/t") == 401
        assert status_of("GET", f"{base}/metadata", "wrong") == 401
        assert status_of("POST", f"{base}/shutdown") == 401
        assert status_of("POST", f"{base}/publish/pubsub/t", "run-token") == 204
    assert proc.poll() is None  # the refused shutdowns stopped nothing
    assert status_of("POST", f"http://127.0.0.2:{port}/v1.0/shutdown", "run-token") == 204
    code, _, err = finish(proc)
    assert code == 0, err
    assert "(API token required)" in err


def test_each_app_of_a_run_file_and_its_sidecar_share_the_apps_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAPR_API_TOKEN", raising=False)
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
    ports = {"alpha": free_port(), "beta": free_port()}
    app = [sys.executable, "-c", CLIENT_APP]
    (tmp_path / "dapr.yaml").write_text(yaml.safe_dump({
        "version": 1,
        "common": {"env": {"DAPR_API_TOKEN": "common-token"}},
        "apps": [
            {"appID": "alpha", "appDirPath": "alpha", "daprHTTPPort": ports["alpha"],
             "apiListenAddresses": "127.0.0.1,127.0.0.2", "command": app},
            {"appID": "beta", "appDirPath": "beta", "daprHTTPPort": ports["beta"],
             "env": {"DAPR_API_TOKEN": "beta-token"}, "command": app},
        ],
    }))
    with killed_at_exit(tether_run("-f", str(tmp_path / "dapr.yaml"), cwd=tmp_path)) as proc:
        check_pair(proc, tmp_path, ports)


def check_pair(proc: subprocess.Popen[str], tmp_path: Path, ports: dict[str, int]) -> None:
    tokens = {"alpha": "common-token", "beta": "beta-token"}
    for name, token in tokens.items():
        wait_for(tmp_path / name / "published", proc)  # its tether.Client got through
        assert (tmp_path / name / "published").read_text() == token
        other = tokens["beta" if name == "alpha" else "alpha"]
        url = f"http://127.0.0.1:{ports[name]}/v1.0/metadata"
        assert [status_of("GET", url, t) for t in (None, other, token)] == [401, 401, 200]
    assert status_of("GET", f"http://127.0.0.2:{ports['alpha']}/v1.0/metadata",
                     "common-token") == 200
    proc.send_signal(signal.SIGTERM)
    code, _, err = finish(proc)
    assert code == 0, err
