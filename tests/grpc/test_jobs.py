"""The SDK's jobs calls (ScheduleJob, GetJob, DeleteJob; the Alpha1 names too) against
``tether run``: the same jobs as the HTTP Jobs API, data as protobuf Any, triggers on the
app."""

from __future__ import annotations

import json

import grpc
import pytest
import requests
from dapr.clients import DaprClient
from dapr.clients.grpc._jobs import ConstantFailurePolicy, DropFailurePolicy, Job
from dapr.proto.runtime.v1 import jobs_pb2
from dapr.proto.runtime.v1.dapr_pb2_grpc import DaprStub
from google.protobuf import any_pb2, struct_pb2, wrappers_pb2
from google.protobuf.json_format import MessageToDict

from tests.grpc.conftest import GrpcSidecar
from tests.sidecars import until


def _packed(message: object) -> any_pb2.Any:
    found = any_pb2.Any()
    found.Pack(message)
    return found


def test_schedule_get_delete(client: DaprClient, sidecar: GrpcSidecar) -> None:
    data = _packed(wrappers_pb2.StringValue(value="hello job"))
    client.schedule_job(Job(name="grpc-nightly", schedule="@every 1h", repeats=3, ttl="10h",
                            data=data, failure_policy=DropFailurePolicy()))
    got = client.get_job("grpc-nightly")
    assert (got.name, got.schedule, got.repeats, got.ttl, got.due_time) == (
        "grpc-nightly", "@every 1h", 3, "10h", None)
    assert isinstance(got.failure_policy, DropFailurePolicy)
    assert got.data is not None
    back = wrappers_pb2.StringValue()
    assert got.data.Unpack(back) and back.value == "hello job"
    # the HTTP Jobs API holds the same job, data in proto3 JSON
    http = requests.get(f"http://127.0.0.1:{sidecar.http_port}/v1.0-alpha1/jobs/grpc-nightly",
                        timeout=30).json()
    assert http["data"] == {"@type": "type.googleapis.com/google.protobuf.StringValue",
                            "value": "hello job"}
    with pytest.raises(grpc.RpcError) as info:  # exists: overwrite not asked for
        client.schedule_job(Job(name="grpc-nightly", schedule="@every 2h"))
    assert info.value.code() == grpc.StatusCode.ABORTED
    assert "already exists" in (info.value.details() or "")
    client.schedule_job(Job(name="grpc-nightly", schedule="@every 2h",
                            failure_policy=ConstantFailurePolicy(max_retries=2,
                                                                 interval_seconds=5)),
                        overwrite=True)
    again = client.get_job("grpc-nightly")
    assert (again.schedule, again.data) == ("@every 2h", None)
    assert isinstance(again.failure_policy, ConstantFailurePolicy)
    assert (again.failure_policy.max_retries, again.failure_policy.interval_seconds) == (2, 5)
    client.delete_job("grpc-nightly")
    with pytest.raises(grpc.RpcError) as info:
        client.get_job("grpc-nightly")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_an_http_job_reads_back_as_a_value(client: DaprClient, sidecar: GrpcSidecar) -> None:
    url = f"http://127.0.0.1:{sidecar.http_port}/v1.0-alpha1/jobs/grpc-from-http"
    answer = requests.post(url, json={"schedule": "@every 1h", "data": {"k": [1, "v"]}},
                           timeout=30)
    assert answer.status_code == 204, answer.text
    got = client.get_job("grpc-from-http")
    value = struct_pb2.Value()
    assert got.data is not None and got.data.Unpack(value)
    assert MessageToDict(value) == {"k": [1, "v"]}
    client.delete_job("grpc-from-http")


def test_a_due_job_fires_on_the_app(client: DaprClient, sidecar: GrpcSidecar) -> None:
    client.schedule_job(Job(name="grpc-soon", due_time="0s",
                            data=_packed(struct_pb2.Value(string_value="payload"))))

    def fired() -> list[str]:
        return [r["body"] for r in sidecar.records() if r["path"] == "/job/grpc-soon"]

    until(lambda: len(fired()) == 1, "the job's trigger reaches the app")
    assert json.loads(fired()[0]) == "payload"


def test_alpha1_names_and_errors(sidecar: GrpcSidecar) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stub = DaprStub(channel)
        stub.ScheduleJobAlpha1(jobs_pb2.ScheduleJobRequest(
            job=jobs_pb2.Job(name="grpc-alpha", schedule="@every 1h")))
        assert stub.GetJobAlpha1(jobs_pb2.GetJobRequest(name="grpc-alpha")).job.schedule == \
            "@every 1h"
        stub.DeleteJobAlpha1(jobs_pb2.DeleteJobRequest(name="grpc-alpha"))
        with pytest.raises(grpc.RpcError) as info:
            stub.ScheduleJob(jobs_pb2.ScheduleJobRequest(job=jobs_pb2.Job(name="no-schedule")))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Schedule is empty" in (info.value.details() or "")
