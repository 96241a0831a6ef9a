"""The sidecar's OpenAPI document (tether/sidecar/openapi.yaml): a valid OpenAPI 3.1
document, with exactly one operation per route of the sidecar (every block present), and
served by the sidecar."""

from __future__ import annotations

import re
from typing import Any

import yaml
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from openapi_spec_validator.versions import consts, get_spec_version

from tether.platform.blocks import BlockContext
from tether.platform.pubsub import PubSubRegistry
from tether.sidecar import create_app
from tether.sidecar.blocks import build_blocks
from tether.sidecar.openapi import PATH, document

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(document())
    return loaded


def documented() -> set[tuple[str, str]]:
    """(method, path) of every operation, path items given by $ref resolved."""
    doc = spec()
    operations = set()
    for path, item in doc["paths"].items():
        if "$ref" in item:
            name = item["$ref"].removeprefix("#/components/pathItems/")
            item = doc["components"]["pathItems"][name]
        operations |= {(method.upper(), path) for method in METHODS if method in item}
    return operations


def served() -> set[tuple[str, str]]:
    """(method, path) of every route of a sidecar with every block (the blocks serve their
    routes without components), aiohttp's ``{name:regex}`` placeholders as ``{name}``."""
    registry = PubSubRegistry([])
    blocks = build_blocks(BlockContext("app", [], registry))
    app = create_app(registry, app_id="app", blocks=blocks)
    routes = set()
    for route in app.router.routes():
        # aiohttp answers HEAD on every GET route by itself; the document lists what the
        # sidecar serves on purpose
        if route.method == "HEAD":
            continue
        assert route.resource is not None
        path = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.resource.canonical)
        routes.add((route.method, path))
    return routes


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = spec()
    assert get_spec_version(doc) == consts.OPENAPIV31
    validate(doc)


def test_every_route_is_documented_and_every_operation_is_a_route() -> None:
    routes, operations = served(), documented()
    assert routes - operations == set(), "routes missing from openapi.yaml"
    assert operations - routes == set(), "operations openapi.yaml has but the sidecar lacks"


def test_operation_ids_are_unique() -> None:
    doc = spec()
    ids = [op["operationId"] for item in doc["paths"].values() for method, op in item.items()
           if method in METHODS and "operationId" in op]
    assert len(ids) == len(set(ids))


async def test_the_sidecar_serves_the_document() -> None:
    registry = PubSubRegistry([])
    app = create_app(registry, app_id="app")
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get(PATH)
        assert response.status == 200
        assert response.content_type == "application/yaml"
        assert await response.read() == document()
        assert yaml.safe_load(await response.read())["paths"][PATH]["get"]
