"""The Jobs API between real processes: ``tether run`` with a plain aiohttp app
(tests/jobs/job_app.py) on the embedded broker and state.sqlite (one Redis run): repeats,
a one-shot dueTime, delete, the failure policies, Dapr's errors, the list, the client and
the CLI; two replicas firing each trigger once; a job surviving a SIGKILL of ``tether run``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import tether
from tests import sidecars
from tests.invocation.test_run_invoke import ROOT, WAIT
from tests.sidecars import component, until, write_components
from tether.cli.run import free_port

APP = Path(__file__).with_name("job_app.py")
APP_ID = "jobber"


def embedded(root: Path) -> Path:
    return write_components(
        root / "components",
        component("pubsub", "pubsub.tether.embedded", path=str(root / "broker.db")),
        component("state", "state.sqlite", connectionString=str(root / "state.db")),
    )


class Sidecar(sidecars.Sidecar):
    """One ``tether run`` of the job app with the components in ``root/components``."""

    def __init__(self, root: Path, name: str = "app", port: int | None = None) -> None:
        super().__init__(root, APP, APP_ID, name, port)

    def schedule(self, name: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(self.url(f"/v1.0-alpha1/jobs/{name}"), json=body,
                                 timeout=WAIT)

    def job(self, name: str) -> requests.Response:
        return self.session.get(self.url(f"/v1.0-alpha1/jobs/{name}"), timeout=WAIT)

    def calls(self, name: str | None = None) -> list[dict[str, Any]]:
        path = self.folder / "jobs.jsonl"
        if not path.exists():
            return []
        calls = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [c for c in calls if name is None or c["name"] == name]


def until_done(sidecar: Sidecar, name: str) -> None:
    """A job with no trigger left is removed, as in Dapr: GET answers 404."""
    until(lambda: sidecar.job(name).status_code == 404, f"job {name} to finish", sidecar)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    root = tmp_path_factory.mktemp("jobs-run")
    embedded(root)
    sidecar = Sidecar(root).until_up()
    try:
        yield sidecar
    finally:
        log = sidecar.process.stop()
        assert "Traceback" not in log, log


def test_a_repeating_job_fires_as_many_times_as_its_repeats(run: Sidecar) -> None:
    answer = run.schedule("thrice", {"schedule": "@every 1s", "repeats": 3,
                                     "data": {"n": 1}})
    assert answer.status_code == 204, answer.text
    until_done(run, "thrice")
    calls = run.calls("thrice")
    assert len(calls) == 3, calls
    assert {c["body"] for c in calls} == {'{"n":1}'}
    assert {c["contentType"] for c in calls} == {"application/json"}


def test_a_due_time_job_fires_once_with_its_data(run: Sidecar) -> None:
    assert run.schedule("once", {"dueTime": "1s", "data": "hello"}).status_code == 204
    got = run.job("once")
    assert got.status_code == 200
    assert got.json() == {"name": "once", "dueTime": "1s", "data": "hello"}
    until_done(run, "once")
    assert [c["body"] for c in run.calls("once")] == ['"hello"']


def test_a_deleted_job_stops_firing(run: Sidecar) -> None:
    assert run.schedule("forever", {"schedule": "@every 1s"}).status_code == 204
    until(lambda: len(run.calls("forever")) >= 1, "a first trigger", run)
    assert run.session.delete(run.url("/v1.0-alpha1/jobs/forever"), timeout=WAIT
                              ).status_code == 204
    at_delete = len(run.calls("forever"))
    # a marker due after two more ticks of the deleted job would have come
    assert run.schedule("marker", {"dueTime": "3s"}).status_code == 204
    until_done(run, "marker")
    assert run.calls("marker")
    assert len(run.calls("forever")) <= at_delete + 1  # at most the one in flight


def test_the_constant_failure_policy_retries_and_drop_does_not(run: Sidecar) -> None:
    assert run.schedule("flaky", {
        "dueTime": "0s", "data": {"fail": 2},
        "failurePolicy": {"constant": {"interval": "0.2s", "maxRetries": 3}},
    }).status_code == 204
    assert run.schedule("fragile", {
        "dueTime": "0s", "data": {"fail": 5}, "failure_policy": {"drop": {}},
    }).status_code == 204
    until_done(run, "flaky")
    until_done(run, "fragile")
    assert len(run.calls("flaky")) == 3  # two failures, then the success
    assert len(run.calls("fragile")) == 1


@pytest.mark.parametrize(("body", "status", "code"), [
    ({}, 400, "DAPR_SCHEDULER_SCHEDULE_EMPTY"),
    ({"schedule": "every now and then"}, 400, "DAPR_SCHEDULER_SCHEDULE_JOB"),
    ({"schedule": "@daily", "repeats": -1}, 400, "ERR_MALFORMED_REQUEST"),
    ({"name": "other", "schedule": "@daily"}, 400, "DAPR_SCHEDULER_JOB_NAME"),
    ({"dueTime": "tomorrow"}, 400, "DAPR_SCHEDULER_SCHEDULE_JOB"),
    ({"schedule": "@daily", "failurePolicy": {"sometimes": {}}}, 400,
     "DAPR_SCHEDULER_SCHEDULE_JOB"),
])
def test_bad_jobs_get_dapr_s_errors(run: Sidecar, body: dict[str, Any], status: int,
                                    code: str) -> None:
    answer = run.schedule("bad", body)
    assert (answer.status_code, answer.json()["errorCode"]) == (status, code), answer.text
    assert run.job("bad").status_code == 404


def test_a_job_exists_until_overwritten_and_unknown_ones_are_404(run: Sidecar) -> None:
    assert run.schedule("daily", {"schedule": "@daily", "data": 1}).status_code == 204
    again = run.schedule("daily", {"schedule": "@hourly"})
    assert (again.status_code, again.json()["errorCode"]) == (409, "DAPR_SCHEDULER_SCHEDULE_JOB")
    assert run.job("daily").json()["schedule"] == "@daily"
    assert run.schedule("daily", {"schedule": "0 30 * * * *", "overwrite": True,
                                  "failurePolicy": {"drop": {}}}).status_code == 204
    assert run.job("daily").json() == {"name": "daily", "schedule": "0 30 * * * *",
                                       "failurePolicy": {"drop": {}}}
    listed = run.session.get(run.url("/v1.0-alpha1/jobs"), timeout=WAIT).json()["jobs"]
    assert "daily" in [j["name"] for j in listed]
    missing = run.job("nope")
    assert (missing.status_code, missing.json()["errorCode"]) == (404, "DAPR_SCHEDULER_GET_JOB")
    assert run.session.delete(run.url("/v1.0/jobs/nope"), timeout=WAIT).status_code == 204


def test_the_client_and_the_cli_manage_jobs(run: Sidecar) -> None:
    with tether.Client(run.url("")) as client:
        client.schedule_job_alpha1(tether.Job("nightly", schedule="@daily", data={"a": 1},
                                              failure_policy=tether.DropFailurePolicy()))
        job = client.get_job_alpha1("nightly")
        assert (job.name, job.schedule, job.data) == ("nightly", "@daily", {"a": 1})
        assert isinstance(job.failure_policy, tether.DropFailurePolicy)
        with pytest.raises(tether.TetherApiError) as caught:
            client.schedule_job_alpha1(tether.Job("nightly", schedule="@hourly"))
        assert caught.value.status == 409
        client.schedule_job_alpha1(tether.Job("nightly", schedule="@hourly"), overwrite=True)
        assert client.get_job_alpha1("nightly").schedule == "@hourly"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        return subprocess.run(
            [sys.executable, "-m", "tether.cli.main", "jobs", "--dapr-http-port",
             str(run.port), *args], capture_output=True, text=True, env=env, timeout=WAIT)

    listed = cli("list")
    assert listed.returncode == 0, listed.stderr
    assert "nightly" in listed.stdout and "@hourly" in listed.stdout
    got = cli("get", "nightly")
    assert got.returncode == 0 and json.loads(got.stdout)["schedule"] == "@hourly"
    assert cli("delete", "nightly").returncode == 0
    missing = cli("get", "nightly")
    assert missing.returncode != 0 and "DAPR_SCHEDULER_GET_JOB" in missing.stderr
    with tether.Client(run.url("")) as client:
        with pytest.raises(tether.TetherApiError):
            client.get_job_alpha1("nightly")
        client.delete_job_alpha1("nightly")  # an unknown job: fine, as in Dapr


def test_each_trigger_fires_once_across_two_replicas(tmp_path: Path) -> None:
    embedded(tmp_path)
    replicas = [Sidecar(tmp_path, "one"), Sidecar(tmp_path, "two")]
    try:
        for replica in replicas:
            replica.until_up()
        answer = replicas[0].schedule("shared", {"schedule": "@every 1s", "repeats": 6})
        assert answer.status_code == 204, answer.text
        until_done(replicas[1], "shared")
        calls = [c for r in replicas for c in r.calls("shared")]
        assert len(calls) == 6, calls
    finally:
        for replica in replicas:
            replica.process.stop()


def test_a_job_survives_a_sigkill_of_tether_run(tmp_path: Path) -> None:
    embedded(tmp_path)
    first = Sidecar(tmp_path, "first").until_up()
    try:
        assert first.schedule("survivor", {"dueTime": "2s", "data": "still here"}
                              ).status_code == 204
        os.kill(first.process.proc.pid, signal.SIGKILL)
        first.process.proc.wait()
    finally:
        first.process.stop()
    assert not first.calls("survivor")
    again = Sidecar(tmp_path, "first", port=free_port()).until_up()
    try:
        until_done(again, "survivor")
        assert [c["body"] for c in again.calls("survivor")] == ['"still here"']
    finally:
        again.process.stop()


def test_jobs_on_redis(tmp_path: Path, redis_address: str) -> None:
    write_components(
        tmp_path / "components",
        component("pubsub", "pubsub.redis", redisHost=redis_address),
        component("state", "state.redis", redisHost=redis_address,
                  keyPrefix="none"),
    )
    sidecar = Sidecar(tmp_path).until_up()
    try:
        name = f"redis-{os.getpid()}-{time.monotonic_ns()}"
        assert sidecar.schedule(name, {"schedule": "@every 1s", "repeats": 2,
                                       "data": [1, 2]}).status_code == 204
        until_done(sidecar, name)
        assert [c["body"] for c in sidecar.calls(name)] == ["[1,2]", "[1,2]"]
    finally:
        sidecar.process.stop()
