"""Multi-app run files: parsing, and ``tether run -f`` with two apps as real processes."""

from __future__ import annotations

import json
import signal
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.platform.test_run import finish, http, tether_run, wait_for, wait_for_sidecar
from tether.cli.run import free_port
from tether.cli.run.runfile import RunFileError, load_run_file

# writes the ports it was given, says hello, runs until stopped
APP = """
import json, os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("hello from", os.environ["APP_ID"], "greeting", os.environ.get("GREETING"), flush=True)
json.dump({k: os.environ.get(k) for k in ("DAPR_HTTP_PORT", "DAPR_GRPC_PORT", "DEBUG")},
          open("ports.tmp", "w"))
os.rename("ports.tmp", "ports.json")
while True:
    time.sleep(1)
"""


def write(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_run_file_is_read_with_paths_relative_to_it(tmp_path: Path) -> None:
    (tmp_path / "apps" / "web").mkdir(parents=True)
    (tmp_path / "apps" / "worker").mkdir()
    (tmp_path / "shared").mkdir()
    (tmp_path / "own").mkdir()
    run_file = write(tmp_path / "dapr.yaml", {
        "version": 1,
        "common": {"resourcesPath": "./shared", "env": {"DEBUG": True, "LEVEL": 2}},
        "apps": [
            {"appID": "web", "appDirPath": "apps/web", "appPort": 8080, "daprHTTPPort": 3510,
             "command": ["python3", "app.py"], "env": {"LEVEL": "3"}},
            {"appDirPath": "apps/worker", "resourcesPath": "../../own", "appProtocol": "http"},
        ],
    })
    web, worker = load_run_file(tmp_path)  # a folder means its dapr.yaml
    assert run_file.exists()
    assert (web.app_id, web.app_port, web.http_port) == ("web", 8080, 3510)
    assert web.command == ("python3", "app.py")
    assert web.cwd == (tmp_path / "apps" / "web").resolve()
    assert dict(web.env) == {"DEBUG": "true", "LEVEL": "3"}
    assert web.resources_paths == ((tmp_path / "shared").resolve(),)
    assert worker.app_id == "worker"  # the folder's name, as in Dapr
    assert worker.command == ()
    assert worker.resources_paths == ((tmp_path / "own").resolve(),)
    assert len({web.http_port, web.grpc_port, worker.http_port, worker.grpc_port}) == 4


def test_api_processes_come_from_the_app_or_common(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write(tmp_path / "dapr.yaml", {
        "version": 1, "common": {"apiProcesses": 2},
        "apps": [{"appDirPath": "a", "apiProcesses": 3}, {"appDirPath": "b"}],
    })
    a, b = load_run_file(tmp_path)
    assert (a.api_processes, b.api_processes) == (3, 2)
    write(tmp_path / "dapr.yaml", {"version": 1, "apps": [{"appDirPath": "a"}]})
    assert load_run_file(tmp_path)[0].api_processes == 1


def test_metrics_port_and_enable_metrics_per_app_or_common(tmp_path: Path) -> None:
    for name in "abc":
        (tmp_path / name).mkdir()
    write(tmp_path / "dapr.yaml", {
        "version": 1, "common": {"enableMetrics": False},
        "apps": [{"appDirPath": "a", "enableMetrics": True, "metricsPort": 9191},
                 {"appDirPath": "b", "metricsPort": 9192}],
    })
    a, b = load_run_file(tmp_path)
    assert (a.metrics_port, b.metrics_port) == (9191, None)  # b: off by common
    write(tmp_path / "dapr.yaml", {
        "version": 1, "apps": [{"appDirPath": "a"}, {"appDirPath": "b"}, {"appDirPath": "c"}],
    })
    ports = [spec.metrics_port for spec in load_run_file(tmp_path)]
    assert None not in ports and len(set(ports)) == 3  # each its own free port


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"version": 2, "apps": [{"appDirPath": "."}]}, "version must be 1"),
        ({"version": 1, "apps": []}, "apps must be a non-empty list"),
        ({"version": 1, "apps": [{"appID": "a"}]}, "apps[0].appDirPath is required"),
        ({"version": 1, "apps": [{"appDirPath": "nowhere"}]}, "is not a folder"),
        ({"version": 1, "apps": [{"appDirPath": ".", "command": "python app.py"}]},
         "apps[0].command must be a list of strings"),
        ({"version": 1, "apps": [{"appDirPath": ".", "appPort": "80"}]},
         "apps[0].appPort must be a port number"),
        ({"version": 1, "apps": [{"appID": "a", "appDirPath": "."},
                                 {"appID": "a", "appDirPath": "."}]}, "app id 'a' twice"),
        ({"version": 1, "apps": [{"appID": "a", "appDirPath": ".", "daprHTTPPort": 3600},
                                 {"appID": "b", "appDirPath": ".", "daprHTTPPort": 3600}]},
         "port 3600 twice"),
        ({"version": 1, "apps": [{"appDirPath": ".", "apiProcesses": 0}]},
         "apps[0].apiProcesses API processes must be 1 to 64, not 0"),
        ({"version": 1, "common": {"apiProcesses": "2"}, "apps": [{"appDirPath": "."}]},
         "common.apiProcesses must be a whole number"),
        ({"version": 1, "apps": [{"appDirPath": ".", "enableMetrics": "no"}]},
         "apps[0].enableMetrics must be true or false"),
        ({"version": 1, "apps": [{"appID": "a", "appDirPath": ".", "metricsPort": 9300},
                                 {"appID": "b", "appDirPath": ".", "metricsPort": 9300}]},
         "port 9300 twice"),
    ],
)
def test_a_bad_run_file_names_the_file_and_field(
    tmp_path: Path, data: dict[str, object], problem: str
) -> None:
    run_file = write(tmp_path / "run.yaml", data)
    with pytest.raises(RunFileError) as caught:
        load_run_file(run_file)
    assert str(run_file) in str(caught.value)
    assert problem in str(caught.value)


def test_a_missing_run_file_exits_1(tmp_path: Path) -> None:
    code, _, err = finish(tether_run("-f", str(tmp_path / "absent.yaml"), cwd=tmp_path))
    assert code == 1
    assert "absent.yaml: run file not found" in err


def test_two_apps_get_their_own_sidecars_and_stop_together(tmp_path: Path) -> None:
    ports: dict[str, dict[str, str]] = {}
    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
    alpha_port = free_port()
    write(tmp_path / "dapr.yaml", {
        "version": 1,
        "common": {"env": {"GREETING": "hi", "DEBUG": True}},
        "apps": [
            {"appID": "alpha", "appDirPath": "alpha", "daprHTTPPort": alpha_port,
             "command": [sys.executable, "-c", APP]},
            {"appID": "beta", "appDirPath": "beta", "command": [sys.executable, "-c", APP]},
        ],
    })
    proc = tether_run("-f", str(tmp_path / "dapr.yaml"), cwd=tmp_path)
    try:
        for name in ("alpha", "beta"):
            wait_for(tmp_path / name / "ports.json", proc)
            ports[name] = json.loads((tmp_path / name / "ports.json").read_text())
        assert ports["alpha"]["DAPR_HTTP_PORT"] == str(alpha_port)
        assert ports["alpha"]["DAPR_HTTP_PORT"] != ports["beta"]["DAPR_HTTP_PORT"]
        assert ports["alpha"]["DEBUG"] == "true"
        for name in ("alpha", "beta"):
            port = int(ports[name]["DAPR_HTTP_PORT"])
            wait_for_sidecar(port, proc)
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/v1.0/metadata", timeout=30
            ) as response:
                assert json.load(response)["id"] == name
            body = b'{"n": 1}'
            assert http("POST", f"http://127.0.0.1:{port}/v1.0/publish/pubsub/t", body) == 204
        proc.send_signal(signal.SIGTERM)
        code, out, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert code == 0, err
    lines = out.splitlines()
    assert "== APP - alpha == hello from alpha greeting hi" in lines
    assert "== APP - beta == hello from beta greeting hi" in lines
    assert "sidecar for app 'alpha' stopped" in err
    assert "sidecar for app 'beta' stopped" in err
