"""bindings.azure.blobstorage against a real Blob service (Azurite): every operation, Dapr's
response shapes, content headers and metadata, base64, missing blobs, metadata mistakes."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.bindings.storage_servers import AZURITE_ACCOUNT, AZURITE_KEY
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

ACCOUNT = {"accountName": AZURITE_ACCOUNT, "accountKey": AZURITE_KEY}


def component(**meta: str) -> Component:
    lines = "".join(f"  - name: {k}\n    value: {json.dumps(v)}\n" for k, v in meta.items())
    yaml = ("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: blobs\n"
            f"spec:\n  type: bindings.azure.blobstorage\n  version: v1\n  metadata:\n{lines}")
    (loaded,) = load_documents(yaml, "blob.yaml", Templates("app"))
    assert isinstance(loaded, Component)
    return loaded


def build(**meta: str) -> Binding:
    return BINDING_TYPES.build(component(**meta))


async def started(endpoint: str, container: str, **meta: str) -> OutputBinding:
    binding = build(endpoint=endpoint, containerName=container, **{**ACCOUNT, **meta})
    assert binding.output is not None
    await binding.output.start()
    return binding.output


def call(operation: str, data: bytes = b"", **meta: str) -> BindingRequest:
    return BindingRequest(operation=operation, data=data, metadata=meta)


@pytest.fixture
def container() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def blobs(azurite_endpoint: str, container: str) -> AsyncIterator[OutputBinding]:
    output = await started(azurite_endpoint, container)
    yield output
    await output.close()


async def test_create_then_get_round_trips_the_bytes(blobs: OutputBinding, container: str,
                                                     azurite_endpoint: str) -> None:
    created = await blobs.invoke(call("create", b"hello \x00 blob", blobName="dir/a.txt"))
    url = f"{azurite_endpoint}/{AZURITE_ACCOUNT}/{container}/dir/a.txt"
    assert json.loads(created.data or b"") == {"blobURL": url, "blobName": "dir/a.txt"}
    assert created.metadata == {"blobURL": url, "blobName": "dir/a.txt"}
    got = await blobs.invoke(call("get", blobName="dir/a.txt"))
    assert got.data == b"hello \x00 blob"
    assert got.metadata == {}


async def test_create_without_a_name_generates_a_uuid(blobs: OutputBinding) -> None:
    created = await blobs.invoke(call("create", b"x"))
    name = created.metadata["blobName"]
    assert str(uuid.UUID(name)) == name
    assert (await blobs.invoke(call("get", blobName=name))).data == b"x"


async def test_start_creates_the_container_once(azurite_endpoint: str,
                                                container: str) -> None:
    first = await started(azurite_endpoint, container, publicAccessLevel="blob")
    await first.invoke(call("create", b"public", blobName="p"))
    # a second start finds the container there: no error, nothing lost
    second = await started(azurite_endpoint, container)
    try:
        assert (await second.invoke(call("get", blobName="p"))).data == b"public"
        # publicAccessLevel=blob: anyone may read the blob without the key
        url = f"{azurite_endpoint}/{AZURITE_ACCOUNT}/{container}/p"
        async with aiohttp.ClientSession() as http, http.get(url) as answer:
            assert answer.status == 200
            assert await answer.read() == b"public"
    finally:
        await first.close()
        await second.close()


async def test_a_private_container_refuses_anonymous_reads(blobs: OutputBinding,
                                                           container: str,
                                                           azurite_endpoint: str) -> None:
    await blobs.invoke(call("create", b"secret", blobName="s"))
    url = f"{azurite_endpoint}/{AZURITE_ACCOUNT}/{container}/s"
    async with aiohttp.ClientSession() as http, http.get(url) as answer:
        assert answer.status in (403, 404)


async def test_disable_entity_management_needs_an_existing_container(
        azurite_endpoint: str, container: str) -> None:
    binding = build(endpoint=azurite_endpoint, containerName=container,
                    disableEntityManagement="true", **ACCOUNT)
    assert binding.output is not None
    with pytest.raises(BindingFailedError, match=container):
        await binding.output.start()


async def test_content_headers_and_blob_metadata(blobs: OutputBinding) -> None:
    await blobs.invoke(call("create", b'{"a":1}', blobName="m.json",
                            contentType="application/json", cacheControl="no-cache",
                            owner="team-a", **{"odd-key!": "v\u00e9"}))
    got = await blobs.invoke(call("get", blobName="m.json", includeMetadata="true"))
    assert got.data == b'{"a":1}'
    assert got.content_type == "application/json"
    # Dapr keeps only letters and digits in keys and ASCII in values
    assert got.metadata == {"owner": "team-a", "oddkey": "v"}
    plain = await blobs.invoke(call("get", blobName="m.json"))
    assert plain.metadata == {}
    listed = json.loads((await blobs.invoke(call("list"))).data or b"")
    assert listed[0]["Properties"]["CacheControl"] == "no-cache"


async def test_content_md5_is_checked(blobs: OutputBinding) -> None:
    good = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
    await blobs.invoke(call("create", b"payload", blobName="md5", contentMD5=good))
    listed = json.loads((await blobs.invoke(call("list"))).data or b"")
    assert listed[0]["Properties"]["ContentMD5"] == good
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(BindingRequestError, match=r"Md5Mismatch"):
        await blobs.invoke(call("create", b"payload", blobName="md5-bad", contentMD5=wrong))
    with pytest.raises(BindingRequestError, match="128 bits"):
        await blobs.invoke(call("create", b"payload", blobName="md5-bad", contentMD5="abc"))
    with pytest.raises(BindingNotFoundError):
        await blobs.invoke(call("get", blobName="md5-bad"))


async def test_decode_base64(azurite_endpoint: str, container: str) -> None:
    output = await started(azurite_endpoint, container, decodeBase64="true")
    try:
        await output.invoke(call("create", base64.b64encode(b"\xff\x00bin"), blobName="b"))
        assert (await output.invoke(call("get", blobName="b"))).data == b"\xff\x00bin"
        with pytest.raises(BindingRequestError, match="base64"):
            await output.invoke(call("create", b"not base64!", blobName="c"))
    finally:
        await output.close()


async def test_get_of_a_missing_blob_is_not_found(blobs: OutputBinding) -> None:
    with pytest.raises(BindingNotFoundError, match="'nope'"):
        await blobs.invoke(call("get", blobName="nope"))


@pytest.mark.parametrize("operation", ["get", "delete"])
async def test_get_and_delete_need_a_blob_name(blobs: OutputBinding, operation: str) -> None:
    with pytest.raises(BindingRequestError, match="blobName"):
        await blobs.invoke(call(operation))


async def test_get_refuses_a_bad_include_metadata(blobs: OutputBinding) -> None:
    await blobs.invoke(call("create", b"x", blobName="i"))
    with pytest.raises(BindingRequestError, match="includeMetadata"):
        await blobs.invoke(call("get", blobName="i", includeMetadata="maybe"))


async def test_delete(blobs: OutputBinding) -> None:
    await blobs.invoke(call("create", b"x", blobName="gone"))
    assert not (await blobs.invoke(call("delete", blobName="gone"))).data
    with pytest.raises(BindingNotFoundError):
        await blobs.invoke(call("get", blobName="gone"))
    with pytest.raises(BindingNotFoundError, match="'gone'"):
        await blobs.invoke(call("delete", blobName="gone"))


async def test_delete_snapshots_option(blobs: OutputBinding) -> None:
    await blobs.invoke(call("create", b"x", blobName="snap"))
    with pytest.raises(BindingRequestError, match="delete snapshot option"):
        await blobs.invoke(call("delete", blobName="snap", deleteSnapshots="all"))
    assert not (await blobs.invoke(call("delete", blobName="snap",
                                        deleteSnapshots="include"))).data
    with pytest.raises(BindingNotFoundError):
        await blobs.invoke(call("get", blobName="snap"))


async def test_list_answers_the_go_sdk_shape(blobs: OutputBinding) -> None:
    for name in ("a/1", "a/2", "b/1"):
        await blobs.invoke(call("create", b"12345", blobName=name, contentType="text/plain"))
    answer = await blobs.invoke(call("list"))
    items = json.loads(answer.data or b"")
    assert [item["Name"] for item in items] == ["a/1", "a/2", "b/1"]
    assert answer.metadata == {"marker": "", "number": "3", "pagesTraversed": "1"}
    props = items[0]["Properties"]
    assert props["ContentLength"] == 5
    assert props["ContentType"] == "text/plain"
    assert props["BlobType"] == "BlockBlob"
    assert props["LastModified"].endswith("Z")
    assert items[0]["Deleted"] is False
    assert items[0]["Metadata"] is None


async def test_list_pages_with_max_results_and_marker(blobs: OutputBinding) -> None:
    for name in ("a/1", "a/2", "b/1"):
        await blobs.invoke(call("create", b"x", blobName=name))
    first = await blobs.invoke(call("list", b'{"maxResults": 2}'))
    assert [item["Name"] for item in json.loads(first.data or b"")] == ["a/1", "a/2"]
    assert first.metadata["number"] == "2"
    marker = first.metadata["marker"]
    assert marker
    rest = await blobs.invoke(call("list", json.dumps({"marker": marker}).encode()))
    assert [item["Name"] for item in json.loads(rest.data or b"")] == ["b/1"]
    assert rest.metadata["marker"] == ""


async def test_list_with_prefix_and_included_metadata(blobs: OutputBinding) -> None:
    await blobs.invoke(call("create", b"x", blobName="a/1", owner="me"))
    await blobs.invoke(call("create", b"x", blobName="b/1"))
    body = b'{"prefix": "a/", "include": {"metadata": true}}'
    items = json.loads((await blobs.invoke(call("list", body))).data or b"")
    assert [(item["Name"], item["Metadata"]) for item in items] == [("a/1", {"owner": "me"})]


async def test_list_of_an_empty_container(blobs: OutputBinding) -> None:
    answer = await blobs.invoke(call("list"))
    assert json.loads(answer.data or b"") == []
    assert answer.metadata["number"] == "0"


@pytest.mark.parametrize("data", [b"[1]", b"{not json", b'{"maxResults": "ten"}',
                                  b'{"prefix": 3}', b'{"include": {"metadata": "yes"}}'])
async def test_list_body_mistakes(blobs: OutputBinding, data: bytes) -> None:
    with pytest.raises(BindingRequestError, match="list"):
        await blobs.invoke(call("list", data))


async def test_unsupported_operation(blobs: OutputBinding) -> None:
    with pytest.raises(BindingRequestError, match="unsupported"):
        await blobs.invoke(call("presign", blobName="x"))


async def test_a_wrong_account_key_fails_at_start(azurite_endpoint: str,
                                                  container: str) -> None:
    wrong = base64.b64encode(b"not the key").decode()
    binding = build(endpoint=azurite_endpoint, containerName=container,
                    accountName=AZURITE_ACCOUNT, accountKey=wrong, getBlobRetryCount="0")
    assert binding.output is not None
    with pytest.raises(BindingFailedError, match="accountKey"):
        await binding.output.start()


async def test_start_fails_when_the_endpoint_is_unreachable() -> None:
    from tests.servers import free_port

    binding = build(endpoint=f"http://127.0.0.1:{free_port()}", containerName="c",
                    getBlobRetryCount="0", **ACCOUNT)
    assert binding.output is not None
    with pytest.raises(BindingFailedError, match="container 'c'"):
        await binding.output.start()


def test_older_field_names_are_accepted() -> None:
    from tether.platform.bindings.components.azure_blob import BlobOutput

    output = build(storageAccount="acct", storageAccessKey=AZURITE_KEY,
                   container="things").output
    assert isinstance(output, BlobOutput)
    assert output.settings.account_url == "https://acct.blob.core.windows.net"
    assert output.settings.container == "things"
    assert output.operations == {"create", "get", "delete", "list"}


@pytest.mark.parametrize(("meta", "field"), [
    ({"accountKey": AZURITE_KEY, "containerName": "c"}, "accountName"),
    ({"accountName": "a", "containerName": "c"}, "accountKey"),
    ({"accountName": "a", "accountKey": "not base64!", "containerName": "c"}, "accountKey"),
    ({"accountName": "a", "accountKey": AZURITE_KEY}, "containerName"),
    ({**ACCOUNT, "containerName": "c", "endpoint": "127.0.0.1:10000"}, "endpoint"),
    ({**ACCOUNT, "containerName": "c", "decodeBase64": "sure"}, "decodeBase64"),
    ({**ACCOUNT, "containerName": "c", "getBlobRetryCount": "-1"}, "getBlobRetryCount"),
    ({**ACCOUNT, "containerName": "c", "publicAccessLevel": "everyone"}, "publicAccessLevel"),
    ({**ACCOUNT, "containerName": "c", "disableEntityManagement": "x"},
     "disableEntityManagement"),
])
def test_metadata_mistakes_name_the_component_and_field(meta: dict[str, str],
                                                        field: str) -> None:
    with pytest.raises(BindingConfigError, match=rf"'blobs'.*metadata {field}"):
        build(**meta)
