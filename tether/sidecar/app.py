"""The sidecar's Dapr-compatible HTTP API as an aiohttp Application (docs/http-api.md)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aiohttp import web

from tether.platform import errors, tracing
from tether.platform.components import Component
from tether.platform.errors import ApiError
from tether.platform.pubsub import PubSubRegistry
from tether.platform.resiliency import Resiliency
from tether.sidecar import openapi
from tether.sidecar.api_block import ApiBlock
from tether.sidecar.middlewares import (
    api_token_check,
    dapr_errors,
    request_metrics,
    request_tracing,
)
from tether.sidecar.publish import PublishApi

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_SIZE = 4 * 1024 * 1024  # Dapr's --max-body-size default
# PUT /v1.0/metadata/{key}: what a caller can make the sidecar hold (and GET /v1.0/metadata
# answer); Dapr sets no limit. docs/http-api.md
MAX_METADATA_VALUE = 64 * 1024
MAX_METADATA_KEYS = 1000
ShutdownCallback = Callable[[], Awaitable[None] | None]
#: the running subscriptions, as ``/v1.0/metadata`` lists them
SubscriptionsView = Callable[[], Sequence[Mapping[str, Any]]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_PUBLISH = "/publish/{pubsub:[^/]*}/{topic:.*}"
_BULK = "/publish/bulk/{pubsub:[^/]*}/{topic:.*}"


def runtime_version() -> str:
    try:
        return f"tether-{version('tether')}"
    except PackageNotFoundError:
        return "tether-dev"


class MetadataApi:
    """``/v1.0/metadata``, the health probes and ``/v1.0/shutdown``."""

    def __init__(
        self,
        app_id: str,
        components: Sequence[Component],
        on_shutdown: ShutdownCallback | None,
        subscriptions: SubscriptionsView | None = None,
        actors: SubscriptionsView | None = None,
    ) -> None:
        self.app_id = app_id
        #: the actor types hosted here and their active actors, as ``actors`` lists them
        self.actors = actors
        self.components = components
        self.on_shutdown = on_shutdown
        self.subscriptions = subscriptions
        self.extended: dict[str, str] = {}
        #: component name -> Dapr capability names, from blocks that report them
        self.capabilities: list[Callable[[], Mapping[str, Sequence[str]]]] = []

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    def describe(self) -> dict[str, Any]:
        """The sidecar's metadata in Dapr's JSON shape (``GET /v1.0/metadata``; the gRPC
        ``GetMetadata`` renders the same)."""
        capabilities: dict[str, Sequence[str]] = {}
        for report in self.capabilities:
            capabilities.update(report())
        return {
            "id": self.app_id,
            "runtimeVersion": runtime_version(),
            "enabledFeatures": [],
            "components": [
                {"name": c.name, "type": c.type, "version": c.version,
                 "capabilities": list(capabilities.get(c.name, ()))}
                for c in self.components
            ],
            "subscriptions": list(self.subscriptions()) if self.subscriptions else [],
            "actors": list(self.actors()) if self.actors else [],
            "httpEndpoints": [],
            "extended": dict(self.extended),
        }

    def set(self, key: str, value: bytes) -> None:
        """Hold ``value`` under ``key`` in the extended metadata; ApiError past the limits."""
        if len(value) > MAX_METADATA_VALUE:
            raise ApiError(
                413, errors.BODY_TOO_LARGE,
                f"the metadata value is larger than the limit of {MAX_METADATA_VALUE} bytes",
            )
        if key not in self.extended and len(self.extended) >= MAX_METADATA_KEYS:
            raise ApiError(
                400, errors.METADATA_SET,
                f"the sidecar holds {MAX_METADATA_KEYS} metadata keys, the limit: a new key "
                "cannot be added (an existing one can be replaced)",
            )
        try:
            self.extended[key] = value.decode()
        except UnicodeDecodeError:
            raise ApiError(400, errors.METADATA_SET, "the value must be UTF-8 text") from None

    async def request_shutdown(self) -> None:
        """Run the shutdown callback (it only schedules the stop)."""
        if self.on_shutdown is not None:
            outcome = self.on_shutdown()
            if inspect.isawaitable(outcome):
                await outcome

    async def get_metadata(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.describe())

    async def put_metadata(self, request: web.Request) -> web.StreamResponse:
        self.set(request.match_info["key"], await request.read())
        return web.Response(status=204)

    async def shutdown(self, request: web.Request) -> web.StreamResponse:
        # the callback only schedules the stop, so the 204 still goes out (as in Dapr)
        await self.request_shutdown()
        return web.Response(status=204)


#: the application's :class:`MetadataApi`, which Dapr's gRPC API serves as well
METADATA = web.AppKey("metadata", MetadataApi)


def create_app(
    registry: PubSubRegistry,
    *,
    app_id: str,
    components: Sequence[Component] = (),
    max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    on_shutdown: ShutdownCallback | None = None,
    close_registry: bool = True,
    subscriptions: SubscriptionsView | None = None,
    blocks: Sequence[ApiBlock] = (),
    actors: SubscriptionsView | None = None,
    api_token: str | None = None,
    forward: Handler | None = None,
    resiliency: Resiliency | None = None,
    http_metrics: bool = True,
) -> web.Application:
    """The HTTP API over ``registry``; ``components`` are the ones ``/v1.0/metadata`` lists.

    ``on_shutdown`` runs on ``POST /v1.0/shutdown`` (it should only schedule the stop, the
    response goes out after it returns). The registry's brokers are closed on app cleanup
    unless ``close_registry`` is False. ``subscriptions`` lists the running subscriptions
    for ``/v1.0/metadata``. Each of ``blocks`` adds its routes; they are started with the
    app and closed on its cleanup, before the brokers (an outbox may still publish). With an
    ``api_token`` (DAPR_API_TOKEN) every route but the health probes requires it.

    ``resiliency`` holds the policies of publish calls (pub/sub components' outbound).
    ``http_metrics`` False leaves the request series out (nothing serves them: metrics
    off, or an API process, whose series are not exported).

    ``forward`` makes this the application of an API process (``tether run --api-processes``,
    tether/sidecar/forward.py): the routes only the main process can answer (metadata,
    shutdown, and those a block lists in ``main_process_routes()``) go to ``forward``.
    """
    # the series first: they see every answer, the error shapes and the 401s included
    middlewares = [request_metrics(app_id)] if http_metrics else []
    if tracing.tracer(app_id) is not None:  # none at all when the app does not trace
        # outside the error shapes: its status is the answer's
        middlewares.append(request_tracing(app_id))
    middlewares.append(dapr_errors(max_body_size))
    if api_token:
        middlewares.append(api_token_check(api_token))
    for block in blocks:  # optional: a block that answers before routing (invocation's proxy)
        extra = getattr(block, "middlewares", None)
        if callable(extra):
            middlewares += extra()
    app = web.Application(client_max_size=max_body_size, middlewares=middlewares)
    publish = PublishApi(registry, app_id, resiliency)
    meta = MetadataApi(app_id, components, on_shutdown, subscriptions, actors)
    app[METADATA] = meta
    routes: list[web.RouteDef] = []
    for prefix in ("/v1.0", "/v1.0-alpha1"):
        # bulk first: a pub/sub named "bulk" would otherwise shadow it (as in Dapr)
        routes.append(web.post(prefix + _BULK, publish.publish_bulk))
    main_only = [
        web.get("/v1.0/metadata", meta.get_metadata),
        web.put("/v1.0/metadata/{key}", meta.put_metadata),
        web.post("/v1.0/shutdown", meta.shutdown),
    ]
    routes += [
        web.post("/v1.0" + _PUBLISH, publish.publish),
        web.get("/v1.0/healthz", meta.healthz),
        web.get("/v1.0/healthz/outbound", meta.healthz),
        *main_only,
        web.get(openapi.PATH, openapi.serve_document),
    ]
    for block in blocks:
        routes += block.routes()
        report = getattr(block, "capabilities", None)  # optional: blocks with components
        if callable(report):
            meta.capabilities.append(report)
        owned = getattr(block, "main_process_routes", None)  # optional: state held by main
        if callable(owned):
            main_only += owned()
    if forward is not None:
        routes = _forwarding(routes, main_only, forward)
    app.add_routes(routes)
    if blocks:

        async def start_blocks(_: web.Application) -> None:
            for block in blocks:
                await block.start()

        async def close_blocks(_: web.Application) -> None:
            for block in reversed(blocks):
                await block.close()

        app.on_startup.append(start_blocks)
        app.on_cleanup.append(close_blocks)
    if close_registry:

        async def close_brokers(_: web.Application) -> None:
            await registry.close()

        app.on_cleanup.append(close_brokers)
    return app


def _forwarding(
    routes: Sequence[web.RouteDef], main_only: Sequence[web.RouteDef], forward: Handler
) -> list[web.RouteDef]:
    """``routes`` with the handler of each of ``main_only`` (same method and path) replaced
    by ``forward``."""
    owned = {(r.method, r.path) for r in main_only}
    return [
        web.RouteDef(r.method, r.path, forward, r.kwargs) if (r.method, r.path) in owned else r
        for r in routes
    ]
