"""``tether run`` of one app in a test: its components written as YAML, the process, its
HTTP API, and the calls the app recorded (``events.jsonl`` / ``calls.jsonl`` in its
folder). Shared by the bindings and actors tests."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import requests
import yaml

from tests.invocation.test_run_invoke import WAIT, Process
from tether.cli.run import free_port


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
    """One ``tether run`` of ``app`` as ``app_id`` with the components in
    ``root/components``, working in ``root/<name>``."""

    def __init__(self, root: Path, app: Path, app_id: str, name: str = "app",
                 port: int | None = None) -> None:
        self.root = root
        self.folder = root / name
        self.folder.mkdir(exist_ok=True)  # a restart of the same app reuses its folder
        self.port = port or free_port()
        self.process = Process(
            ["-a", app_id, "-p", str(free_port()), "-H", str(self.port),
             "--enable-metrics", "false", "-d", str(root / "components"), "--",
             sys.executable, str(app)],
            self.folder, root / f"{name}.log",
        )
        self.session = requests.Session()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def until_up(self) -> Self:
        deadline = time.monotonic() + WAIT
        while True:
            self.process.alive()
            try:
                if self.session.get(self.url("/v1.0/healthz"), timeout=5).status_code == 204:
                    return self
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, self.process.log.read_text()
            time.sleep(0.1)

    def records(self, file: str) -> list[dict[str, Any]]:
        path = self.folder / file
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def until(check: Callable[[], bool], what: str, *sidecars: Sidecar) -> None:
    """Wait for ``check()``, failing with ``what`` after WAIT s or when a sidecar exits."""
    deadline = time.monotonic() + WAIT
    while not check():
        for sidecar in sidecars:
            sidecar.process.alive()
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)
