"""The OpenAPI 3.1 document of the sidecar's HTTP API (``openapi.yaml`` beside this module,
package data), served by the sidecar at :data:`PATH` (docs/http-api.md, "OpenAPI")."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from aiohttp import web

#: Tether's own route: "tether" keeps it clear of any path Dapr's API has or may add
PATH = "/v1.0-alpha1/tether/openapi.yaml"


@cache
def document() -> bytes:
    """The document as shipped (YAML)."""
    return files("tether.sidecar").joinpath("openapi.yaml").read_bytes()


async def serve_document(request: web.Request) -> web.StreamResponse:
    return web.Response(body=document(), content_type="application/yaml")
