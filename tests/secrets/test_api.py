"""The secrets HTTP API through a real sidecar app (aiohttp test server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.platform.secrets.scoping import SecretScopes
from tether.platform.secrets.service import SecretsService
from tether.platform.secrets.stores import Secret, SecretStoreError
from tether.sidecar import create_app
from tether.sidecar.secrets import SecretsApi, secrets_block

SECRETS = {"db-pass": "pw", "api-key": "k", "nested": {"user": "u", "password": "p"}}
CONFIG = {"secrets": {"scopes": [
    {"storeName": "local", "defaultAccess": "deny", "allowedSecrets": ["db-pass", "nested"]},
]}}


def local_components(tmp_path: Path, multi: bool = True) -> list[Component]:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(SECRETS))
    return [
        Component(name="local", type="secretstores.local.file",
                  metadata={"secretsFile": str(path), "multiValued": str(multi).lower()}),
        Component(name="env", type="secretstores.local.env",
                  metadata={"prefix": "SECRETS_TEST_S_"}),
    ]


async def client_for(
    components: list[Component], configuration: Mapping[str, Any] | None = None
) -> TestClient[Any, Any]:
    registry = PubSubRegistry([])
    block = secrets_block(BlockContext("app", components, registry,
                                       configuration=configuration or {}))
    app = create_app(registry, app_id="app", components=components, blocks=[block])
    client: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture
async def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[TestClient[Any, Any]]:
    monkeypatch.setenv("SECRETS_TEST_S_TOKEN", "env-value")
    c = await client_for(local_components(tmp_path), CONFIG)
    yield c
    await c.close()


async def test_get_returns_the_secret_map(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v1.0/secrets/local/db-pass")
    assert resp.status == 200
    assert await resp.json() == {"db-pass": "pw"}
    resp = await client.get("/v1.0/secrets/local/nested?metadata.version_id=3")
    assert await resp.json() == {"user": "u", "password": "p"}
    resp = await client.get("/v1.0/secrets/env/TOKEN")
    assert resp.status == 200 and await resp.json() == {"TOKEN": "env-value"}


async def test_denied_by_scope_is_403(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v1.0/secrets/local/api-key")
    assert resp.status == 403
    assert await resp.json() == {
        "errorCode": "ERR_PERMISSION_DENIED",
        "message": "access denied by policy to get 'api-key' from 'local'",
    }
    # denied comes before the lookup: an unknown name in a denying scope is 403 too
    resp = await client.get("/v1.0/secrets/local/unknown")
    assert resp.status == 403


async def test_unknown_name_is_404_and_unknown_store_is_dapr_401(
    tmp_path: Path, client: TestClient[Any, Any]
) -> None:
    resp = await client.get("/v1.0/secrets/env/NOT_SET_ANYWHERE")
    assert resp.status == 404
    body = await resp.json()
    assert body["errorCode"] == "ERR_SECRET_GET"
    assert "NOT_SET_ANYWHERE" in body["message"] and "env" in body["message"]
    resp = await client.get("/v1.0/secrets/vault/x")
    assert resp.status == 401
    assert await resp.json() == {
        "errorCode": "ERR_SECRET_STORE_NOT_FOUND",
        "message": "failed finding secret store with key vault",
    }
    resp = await client.get("/v1.0/secrets/vault/bulk")
    assert resp.status == 401


async def test_bulk_leaves_out_what_the_scopes_deny(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v1.0/secrets/local/bulk")
    assert resp.status == 200
    assert await resp.json() == {
        "db-pass": {"db-pass": "pw"}, "nested": {"user": "u", "password": "p"}
    }
    resp = await client.get("/v1.0/secrets/env/bulk")
    assert await resp.json() == {"TOKEN": {"TOKEN": "env-value"}}


async def test_without_scopes_everything_is_readable(tmp_path: Path) -> None:
    client = await client_for(local_components(tmp_path, multi=False))
    try:
        resp = await client.get("/v1.0/secrets/local/nested:password")
        assert await resp.json() == {"nested:password": "p"}
        resp = await client.get("/v1.0/secrets/local/bulk")
        assert set(await resp.json()) == {"db-pass", "api-key", "nested:user", "nested:password"}
    finally:
        await client.close()


async def test_no_secret_store_is_dapr_500_not_configured() -> None:
    client = await client_for([Component(name="p", type="pubsub.in-memory")])
    try:
        for path in ("/v1.0/secrets/local/x", "/v1.0/secrets/local/bulk"):
            resp = await client.get(path)
            assert resp.status == 500
            assert await resp.json() == {
                "errorCode": "ERR_SECRET_STORES_NOT_CONFIGURED",
                "message": "secret store is not configured",
            }
    finally:
        await client.close()


class BrokenStore:
    name = "broken"

    async def get(self, name: str, metadata: Mapping[str, str]) -> Secret:
        raise SecretStoreError("the backend is down")

    async def bulk(self, metadata: Mapping[str, str]) -> dict[str, Secret]:
        raise SecretStoreError("the backend is down")


async def test_a_failing_store_is_500_secret_get() -> None:
    registry = PubSubRegistry([])
    api = SecretsApi(SecretsService({"broken": BrokenStore()}, SecretScopes.none()))
    app = create_app(registry, app_id="app", blocks=[api])
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        resp = await client.get("/v1.0/secrets/broken/x")
        assert resp.status == 500
        body = await resp.json()
        assert body["errorCode"] == "ERR_SECRET_GET"
        assert body["message"] == (
            "failed getting secret with key x from secret store broken: the backend is down"
        )
        resp = await client.get("/v1.0/secrets/broken/bulk")
        assert resp.status == 500 and (await resp.json())["errorCode"] == "ERR_SECRET_GET"


async def test_metadata_lists_the_stores_without_their_contents(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/v1.0/metadata")
    text = await resp.text()
    assert {"name": "local", "type": "secretstores.local.file", "version": "v1",
            "capabilities": []} in json.loads(text)["components"]
    assert "pw" not in text and "env-value" not in text


def test_bad_scopes_or_stores_stop_the_block(tmp_path: Path) -> None:
    context = BlockContext("app", local_components(tmp_path), PubSubRegistry([]),
                           configuration={"secrets": {"scopes": [{"storeName": "local",
                                                                   "defaultAccess": "nope"}]}})
    with pytest.raises(BlockConfigError, match="defaultAccess must be allow or deny"):
        secrets_block(context)
    broken = [Component(name="f", type="secretstores.local.file")]
    with pytest.raises(BlockConfigError, match="secretsFile is required"):
        secrets_block(BlockContext("app", broken, PubSubRegistry([])))
