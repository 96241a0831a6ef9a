"""Bindings between real processes: ``tether run`` with a plain-HTTP app
(tests/bindings/binding_app.py) on the embedded broker: output calls through the sidecar and
tether.Client, async output calls, and input events from a cron source delivered to the app.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

import tether
from tests.invocation.test_run_invoke import WAIT, Process
from tether.cli.run import free_port

APP = Path(__file__).with_name("binding_app.py")
APP_ID = "binder"


def component(name: str, type_: str, **meta: str) -> dict[str, Any]:
    return {
        "apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": name},
        "spec": {"type": type_, "version": "v1",
                 "metadata": [{"name": k, "value": v} for k, v in meta.items()]},
    }


def write_components(folder: Path, *documents: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "components.yaml").write_text(yaml.safe_dump_all(documents))
    return folder


class Sidecar:
    """One ``tether run`` of the app with the components in ``root/components``."""

    def __init__(self, root: Path, name: str = "app") -> None:
        self.root = root
        self.folder = root / name
        self.folder.mkdir()
        self.port = free_port()
        self.process = Process(
            ["-a", APP_ID, "-p", str(free_port()), "-H", str(self.port), "-M", "0",
             "--enable-metrics", "false", "-d", str(root / "components"), "--",
             sys.executable, str(APP)],
            self.folder, root / f"{name}.log",
        )
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def until_up(self) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            self.process.alive()
            try:
                if self.session.get(self.url("/v1.0/healthz"), timeout=5).status_code == 204:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, self.process.log.read_text()
            time.sleep(0.1)

    def bind(self, name: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(self.url(f"/v1.0/bindings/{name}"), json=body, timeout=WAIT)

    def events(self) -> list[dict[str, Any]]:
        path = self.folder / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def until(check: Callable[[], bool], what: str, *sidecars: Sidecar) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        for sidecar in sidecars:
            sidecar.process.alive()
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    root = tmp_path_factory.mktemp("bindings-run")
    write_components(
        root / "components",
        component("pubsub", "pubsub.tether.embedded", path=str(root / "broker.db")),
        component("files", "bindings.localstorage", rootPath=str(root / "files")),
    )
    sidecar = Sidecar(root)
    try:
        sidecar.until_up()
        yield sidecar
    finally:
        log = sidecar.process.stop()
        assert "Traceback" not in log, log


def test_output_calls_answer_with_the_component_s_data_and_metadata(run: Sidecar) -> None:
    created = run.bind("files", {"operation": "create", "data": {"order": 7},
                                 "metadata": {"fileName": "orders/7.json"}})
    assert created.status_code in (200, 204), created.text
    assert (run.root / "files" / "orders" / "7.json").read_bytes() == b'{"order":7}'
    got = run.bind("files", {"operation": "get", "metadata": {"fileName": "orders/7.json"}})
    assert (got.status_code, got.content) == (200, b'{"order":7}')
    listed = run.bind("files", {"operation": "list"})
    assert listed.status_code == 200 and "7.json" in listed.text


@pytest.mark.parametrize(("name", "body", "status"), [
    ("nope", {"operation": "create"}, 404),
    ("files", {"operation": "exec"}, 400),
    ("files", {"operation": "get", "metadata": {"fileName": "../escape"}}, 400),
    ("files", {"operation": "get", "metadata": {"fileName": "missing.txt"}}, 404),
    ("files", {"operation": "create", "metadata": {"fileName": 5}}, 400),
])
def test_bad_output_calls_get_dapr_s_error_shape(
    run: Sidecar, name: str, body: dict[str, Any], status: int,
) -> None:
    answer = run.bind(name, body)
    assert answer.status_code == status, answer.text
    assert answer.json()["errorCode"] in ("ERR_INVOKE_OUTPUT_BINDING", "ERR_MALFORMED_REQUEST")
    assert not (run.root / "escape").exists()


def test_the_client_invokes_bindings_with_dapr_s_sdk_names(run: Sidecar) -> None:
    with tether.Client(run.url("")) as client:
        client.invoke_binding("files", "create", "hello", {"fileName": "hello.txt"})
        answer = client.invoke_binding("files", "get", binding_metadata={"fileName": "hello.txt"})
        assert answer.text() == "hello"
        with pytest.raises(tether.TetherApiError) as caught:
            client.invoke_binding("files", "get", binding_metadata={"fileName": "none.txt"})
        assert caught.value.status == 404
        call_id = client.submit_binding("files", "create", "later",
                                        {"fileName": "later.txt"}, key="k")
        assert call_id
    until(lambda: (run.root / "files" / "later.txt").exists(), "the async call to run", run)
    assert (run.root / "files" / "later.txt").read_text() == "later"
