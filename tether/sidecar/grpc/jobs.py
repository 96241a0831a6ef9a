"""ScheduleJob, GetJob and DeleteJob (and their Alpha1 names) over the jobs block's
JobsService, the same one as ``/v1.0-alpha1/jobs/{name}``.

A request is read into the JSON body the HTTP route takes and checked by the same
``read_request``, so both APIs accept and refuse the same jobs. The job's ``data`` is a
protobuf ``Any``; it is kept as JSON so that HTTP reads it and the app's trigger carries it:

- a ``google.protobuf.Value`` is its JSON value (what an HTTP-scheduled job's data is);
- any other type the SDK's protobuf runtime knows (``StringValue``, ``BytesValue``, ...)
  is its proto3 JSON form, ``{"@type": ..., "value": ...}``, as Dapr's protojson gives it;
- a type it does not know is ``{"@type": <type url>, "value": <base64 of its bytes>}``.

GetJob turns each form back into the same ``Any``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import jobs_pb2

# empty, timestamp and wrappers are loaded for their descriptors: an Any of a well-known
# type then reads as its proto3 JSON
from google.protobuf import (  # noqa: F401
    any_pb2,
    duration_pb2,
    empty_pb2,
    json_format,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

from tether.platform.jobs import FailurePolicy, Job, JobsService, read_request
from tether.platform.jobs.model import malformed

_VALUE_TYPE = "type.googleapis.com/google.protobuf.Value"
_TYPE = "@type"


def _data_json(data: any_pb2.Any) -> Any:
    """The JSON kept for ``data`` (see the module's docstring)."""
    if data.type_url == _VALUE_TYPE:
        value = struct_pb2.Value()
        if not data.Unpack(value):
            raise malformed("job data is not a valid google.protobuf.Value")
        return json_format.MessageToDict(value)
    try:
        return json_format.MessageToDict(data)
    except (json_format.Error, TypeError, KeyError):  # a type this process cannot read
        return {_TYPE: data.type_url, "value": base64.b64encode(data.value).decode("ascii")}


def _data_any(text: str) -> any_pb2.Any:
    value = json.loads(text)
    found = any_pb2.Any()
    if isinstance(value, dict) and isinstance(value.get(_TYPE), str):
        try:
            return json_format.ParseDict(value, found)
        except (json_format.ParseError, TypeError, KeyError):
            raw = value.get("value")
            if set(value) == {_TYPE, "value"} and isinstance(raw, str):
                try:
                    return any_pb2.Any(type_url=value[_TYPE],
                                       value=base64.b64decode(raw, validate=True))
                except binascii.Error:
                    pass
    found.Pack(json_format.ParseDict(value, struct_pb2.Value()))
    return found


def _policy_json(policy: common_pb2.JobFailurePolicy) -> dict[str, Any]:
    if policy.HasField("constant"):
        constant: dict[str, Any] = {}
        if policy.constant.HasField("interval"):
            seconds = policy.constant.interval.ToTimedelta().total_seconds()
            constant["interval"] = f"{seconds}s"
        if policy.constant.HasField("max_retries"):
            constant["maxRetries"] = policy.constant.max_retries
        return {"constant": constant}
    return {"drop": {}}


def _policy_proto(policy: FailurePolicy) -> common_pb2.JobFailurePolicy:
    if policy.kind == "drop":
        return common_pb2.JobFailurePolicy(drop=common_pb2.JobFailurePolicyDrop())
    interval = duration_pb2.Duration()
    interval.FromNanoseconds(round(policy.interval * 1e9))
    constant = common_pb2.JobFailurePolicyConstant(interval=interval)
    if policy.max_retries is not None:
        constant.max_retries = policy.max_retries
    return common_pb2.JobFailurePolicy(constant=constant)


def read_job(request: jobs_pb2.ScheduleJobRequest) -> tuple[Job, bool]:
    """The job and its ``overwrite`` flag, checked as the HTTP body is."""
    job = request.job
    body: dict[str, Any] = {"overwrite": request.overwrite}
    if job.HasField("schedule"):
        body["schedule"] = job.schedule
    if job.HasField("due_time"):
        body["dueTime"] = job.due_time
    if job.HasField("ttl"):
        body["ttl"] = job.ttl
    if job.HasField("repeats"):
        body["repeats"] = job.repeats
    if job.HasField("data") and (job.data.type_url or job.data.value):
        body["data"] = _data_json(job.data)
    if job.HasField("failure_policy"):
        body["failurePolicy"] = _policy_json(job.failure_policy)
    return read_request(job.name, body)


def job_message(job: Job) -> jobs_pb2.Job:
    found = jobs_pb2.Job(name=job.name)
    if job.schedule is not None:
        found.schedule = job.schedule
    if job.due_time is not None:
        found.due_time = job.due_time
    if job.ttl is not None:
        found.ttl = job.ttl
    if job.repeats is not None:
        found.repeats = job.repeats
    if job.data is not None:
        found.data.CopyFrom(_data_any(job.data))
    if job.failure_policy is not None:
        found.failure_policy.CopyFrom(_policy_proto(job.failure_policy))
    return found


class JobsRpc:
    def __init__(self, service: JobsService) -> None:
        self.service = service

    async def schedule(self, request: jobs_pb2.ScheduleJobRequest) -> None:
        job, overwrite = read_job(request)
        await self.service.schedule(job, overwrite)

    async def get(self, request: jobs_pb2.GetJobRequest) -> jobs_pb2.GetJobResponse:
        return jobs_pb2.GetJobResponse(job=job_message(await self.service.get(request.name)))

    async def delete(self, request: jobs_pb2.DeleteJobRequest) -> None:
        await self.service.delete(request.name)
