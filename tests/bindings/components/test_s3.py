"""bindings.aws.s3 against a real S3 API (moto's server): every operation, Dapr's response
shapes, the base64 options, missing objects and metadata mistakes."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiobotocore.session import get_session

from tether.platform.bindings.binding import (
    Binding,
    BindingFailedError,
    BindingNotFoundError,
    BindingRequest,
    BindingRequestError,
    OutputBinding,
)
from tether.platform.bindings.registry import BINDING_TYPES, BindingConfigError
from tether.platform.components import Component, Templates, load_documents

KEYS = {"accessKey": "testing", "secretKey": "testing", "region": "us-east-1"}


def component(**meta: str) -> Component:
    lines = "".join(f"  - name: {k}\n    value: {json.dumps(v)}\n" for k, v in meta.items())
    yaml = ("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: files\n"
            f"spec:\n  type: bindings.aws.s3\n  version: v1\n  metadata:\n{lines}")
    (loaded,) = load_documents(yaml, "s3.yaml", Templates("app"))
    assert isinstance(loaded, Component)
    return loaded


def build(**meta: str) -> Binding:
    return BINDING_TYPES.build(component(**meta))


async def make_bucket(endpoint: str, bucket: str, versioned: bool = False) -> None:
    async with get_session().create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        await client.create_bucket(Bucket=bucket)
        if versioned:
            await client.put_bucket_versioning(
                Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


async def started(endpoint: str, bucket: str, **meta: str) -> OutputBinding:
    binding = build(bucket=bucket, endpoint=endpoint, forcePathStyle="true", **KEYS, **meta)
    assert binding.output is not None
    await binding.output.start()
    return binding.output


@pytest.fixture
async def bucket(moto_endpoint: str) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    await make_bucket(moto_endpoint, name)
    return name


@pytest.fixture
async def s3(moto_endpoint: str, bucket: str) -> AsyncIterator[OutputBinding]:
    output = await started(moto_endpoint, bucket)
    yield output
    await output.close()


def call(operation: str, data: bytes = b"", **meta: str) -> BindingRequest:
    return BindingRequest(operation=operation, data=data, metadata=meta)


async def test_create_then_get_round_trips_the_bytes(s3: OutputBinding, bucket: str,
                                                     moto_endpoint: str) -> None:
    created = await s3.invoke(call("create", b"hello \x00 world", key="dir/a.txt"))
    body = json.loads(created.data or b"")
    assert body == {"location": f"{moto_endpoint}/{bucket}/dir/a.txt", "versionID": None}
    assert created.metadata == {"key": "dir/a.txt"}
    got = await s3.invoke(call("get", key="dir/a.txt"))
    assert got.data == b"hello \x00 world"


async def test_create_without_a_key_generates_a_uuid(s3: OutputBinding) -> None:
    created = await s3.invoke(call("create", b"x"))
    key = created.metadata["key"]
    assert str(uuid.UUID(key)) == key
    assert json.loads(created.data or b"")["location"].endswith(f"/{key}")
    assert (await s3.invoke(call("get", key=key))).data == b"x"


async def test_create_keeps_content_type_and_overwrites(s3: OutputBinding) -> None:
    await s3.invoke(call("create", b"old", key="k"))
    await s3.invoke(call("create", b'{"a":1}', **{"key": "k", "Content-Type": "application/json"}))
    got = await s3.invoke(call("get", key="k"))
    assert got.data == b'{"a":1}'
    assert got.content_type == "application/json"


async def test_versioned_bucket_answers_the_version_id(moto_endpoint: str) -> None:
    name = f"v-{uuid.uuid4().hex[:12]}"
    await make_bucket(moto_endpoint, name, versioned=True)
    output = await started(moto_endpoint, name)
    try:
        body = json.loads((await output.invoke(call("create", b"1", key="k"))).data or b"")
        assert isinstance(body["versionID"], str) and body["versionID"]
    finally:
        await output.close()


async def test_create_with_presign_ttl_answers_a_url_that_reads_the_object(
        s3: OutputBinding) -> None:
    created = await s3.invoke(call("create", b"signed", key="p.txt", presignTTL="15m"))
    url = json.loads(created.data or b"")["presignURL"]
    assert "X-Amz-Expires=900" in url
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        assert answer.status == 200
        assert await answer.read() == b"signed"


async def test_presign_operation(s3: OutputBinding) -> None:
    await s3.invoke(call("create", b"later", key="q.txt"))
    answer = await s3.invoke(call("presign", key="q.txt", presignTTL="1h"))
    body = json.loads(answer.data or b"")
    assert list(body) == ["presignURL"]
    async with aiohttp.ClientSession() as http, http.get(body["presignURL"]) as got:
        assert await got.read() == b"later"


@pytest.mark.parametrize(("meta", "problem"), [
    ({"presignTTL": "1h"}, "'key' missing"),
    ({"key": "q.txt"}, "'presignTTL' missing"),
    ({"key": "q.txt", "presignTTL": "soon"}, "presignTTL"),
    ({"key": "q.txt", "presignTTL": "0s"}, "presignTTL"),
])
async def test_presign_request_mistakes(s3: OutputBinding, meta: dict[str, str],
                                        problem: str) -> None:
    with pytest.raises(BindingRequestError, match=problem):
        await s3.invoke(call("presign", **meta))


async def test_a_bad_presign_ttl_on_create_writes_nothing(s3: OutputBinding) -> None:
    with pytest.raises(BindingRequestError, match="presignTTL"):
        await s3.invoke(call("create", b"x", key="never", presignTTL="-5m"))
    with pytest.raises(BindingNotFoundError):
        await s3.invoke(call("get", key="never"))


async def test_get_of_a_missing_object_is_not_found(s3: OutputBinding) -> None:
    with pytest.raises(BindingNotFoundError, match="'nope'"):
        await s3.invoke(call("get", key="nope"))


@pytest.mark.parametrize("operation", ["get", "delete"])
async def test_get_and_delete_need_a_key(s3: OutputBinding, operation: str) -> None:
    with pytest.raises(BindingRequestError, match="'key' missing"):
        await s3.invoke(call(operation))


async def test_delete_removes_the_object(s3: OutputBinding) -> None:
    await s3.invoke(call("create", b"x", key="gone"))
    answer = await s3.invoke(call("delete", key="gone"))
    assert not answer.data
    with pytest.raises(BindingNotFoundError):
        await s3.invoke(call("get", key="gone"))
    # S3 answers a delete of a missing key with success, and so does Dapr
    assert not (await s3.invoke(call("delete", key="gone"))).data


async def test_decode_base64_on_the_component(moto_endpoint: str, bucket: str) -> None:
    output = await started(moto_endpoint, bucket, decodeBase64="true")
    try:
        await output.invoke(call("create", base64.b64encode(b"\xff\x00bin"), key="b"))
        assert (await output.invoke(call("get", key="b"))).data == b"\xff\x00bin"
        with pytest.raises(BindingRequestError, match="base64"):
            await output.invoke(call("create", b"not base64!", key="c"))
        # a request's own flag overrides the component's
        await output.invoke(call("create", b"plain", key="d", decodeBase64="false"))
        assert (await output.invoke(call("get", key="d"))).data == b"plain"
    finally:
        await output.close()


async def test_base64_per_request(s3: OutputBinding) -> None:
    await s3.invoke(call("create", base64.b64encode(b"\x01\x02"), key="e", decodeBase64="true"))
    got = await s3.invoke(call("get", key="e", encodeBase64="true"))
    assert got.data == base64.b64encode(b"\x01\x02")
    assert (await s3.invoke(call("get", key="e"))).data == b"\x01\x02"


async def test_encode_base64_on_the_component(moto_endpoint: str, bucket: str) -> None:
    output = await started(moto_endpoint, bucket, encodeBase64="true")
    try:
        await output.invoke(call("create", b"\xfe", key="f"))
        assert (await output.invoke(call("get", key="f"))).data == b"/g=="
    finally:
        await output.close()


async def test_list_answers_the_go_sdk_shape(s3: OutputBinding, bucket: str) -> None:
    for key in ("a/1", "a/2", "b/1", "c"):
        await s3.invoke(call("create", b"12345", key=key))
    answer = await s3.invoke(call("list"))
    body = json.loads(answer.data or b"")
    assert body["Name"] == bucket
    assert body["IsTruncated"] is False
    assert body["MaxKeys"] == 1000
    assert [item["Key"] for item in body["Contents"]] == ["a/1", "a/2", "b/1", "c"]
    first = body["Contents"][0]
    assert first["Size"] == 5
    assert first["ETag"].startswith('"')
    assert first["LastModified"].endswith("Z")
    assert first["StorageClass"] == "STANDARD"
    assert body["CommonPrefixes"] is None


async def test_list_pages_with_max_results_and_marker(s3: OutputBinding) -> None:
    for key in ("a/1", "a/2", "b/1"):
        await s3.invoke(call("create", b"x", key=key))
    page = json.loads((await s3.invoke(call("list", b'{"maxResults": 2}'))).data or b"")
    assert [item["Key"] for item in page["Contents"]] == ["a/1", "a/2"]
    assert page["IsTruncated"] is True
    rest = json.loads((await s3.invoke(call("list", b'{"marker": "a/2"}'))).data or b"")
    assert [item["Key"] for item in rest["Contents"]] == ["b/1"]


async def test_list_with_prefix_and_delimiter(s3: OutputBinding) -> None:
    for key in ("a/x/1", "a/y/2", "a/3", "b/1"):
        await s3.invoke(call("create", b"x", key=key))
    body = json.loads((await s3.invoke(
        call("list", b'{"prefix": "a/", "delimiter": "/"}'))).data or b"")
    assert [item["Key"] for item in body["Contents"]] == ["a/3"]
    assert body["CommonPrefixes"] == [{"Prefix": "a/x/"}, {"Prefix": "a/y/"}]
    assert body["Prefix"] == "a/"
    assert body["Delimiter"] == "/"


async def test_list_of_an_empty_bucket(s3: OutputBinding) -> None:
    body = json.loads((await s3.invoke(call("list"))).data or b"")
    assert body["Contents"] is None


@pytest.mark.parametrize("data", [b"[1]", b"{not json", b'{"maxResults": "ten"}',
                                  b'{"prefix": 3}'])
async def test_list_body_mistakes(s3: OutputBinding, data: bytes) -> None:
    with pytest.raises(BindingRequestError, match="list"):
        await s3.invoke(call("list", data))


async def test_storage_class_is_sent_and_checked(s3: OutputBinding) -> None:
    await s3.invoke(call("create", b"x", key="ia", storageClass="STANDARD_IA"))
    body = json.loads((await s3.invoke(call("list"))).data or b"")
    assert body["Contents"][0]["StorageClass"] == "STANDARD_IA"
    with pytest.raises(BindingRequestError, match="InvalidStorageClass"):
        await s3.invoke(call("create", b"x", key="bad", storageClass="NOT_A_CLASS"))


async def test_unsupported_operation(s3: OutputBinding) -> None:
    with pytest.raises(BindingRequestError, match="unsupported"):
        await s3.invoke(call("exec"))


async def test_start_fails_on_a_missing_bucket(moto_endpoint: str) -> None:
    binding = build(bucket="no-such-bucket-here", endpoint=moto_endpoint,
                    forcePathStyle="true", **KEYS)
    assert binding.output is not None
    with pytest.raises(BindingFailedError, match="does not exist"):
        await binding.output.start()
    await binding.output.close()


async def test_start_fails_when_the_endpoint_is_unreachable() -> None:
    from tests.servers import free_port

    binding = build(bucket="x", endpoint=f"http://127.0.0.1:{free_port()}", **KEYS)
    assert binding.output is not None
    with pytest.raises(BindingFailedError, match="head_bucket"):
        await binding.output.start()


def test_the_operations_are_dapr_s() -> None:
    output = build(bucket="b").output
    assert output is not None
    assert output.operations == {"create", "get", "delete", "list", "presign"}


@pytest.mark.parametrize(("meta", "field"), [
    ({}, "bucket"),
    ({"bucket": "b", "forcePathStyle": "sometimes"}, "forcePathStyle"),
    ({"bucket": "b", "decodeBase64": "yes please"}, "decodeBase64"),
    ({"bucket": "b", "encodeBase64": "2"}, "encodeBase64"),
    ({"bucket": "b", "disableSSL": "nope"}, "disableSSL"),
    ({"bucket": "b", "insecureSSL": "x"}, "insecureSSL"),
    ({"bucket": "b", "accessKey": "k"}, "secretKey"),
    ({"bucket": "b", "secretKey": "s"}, "accessKey"),
    ({"bucket": "b", "endpoint": "ftp://host"}, "endpoint"),
])
def test_metadata_mistakes_name_the_component_and_field(meta: dict[str, str],
                                                        field: str) -> None:
    with pytest.raises(BindingConfigError, match=rf"'files'.*metadata {field}"):
        build(**meta)


def test_a_bare_endpoint_host_gets_a_scheme() -> None:
    from tether.platform.bindings.components.s3 import S3Output

    secure = build(bucket="b", endpoint="s3.us-west-2.amazonaws.com").output
    plain = build(bucket="b", endpoint="minio:9000", disableSSL="true").output
    assert isinstance(secure, S3Output) and isinstance(plain, S3Output)
    assert secure.settings.endpoint == "https://s3.us-west-2.amazonaws.com"
    assert plain.settings.endpoint == "http://minio:9000"
