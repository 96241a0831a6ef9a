"""``POST /v1.0/publish/{pubsub}/{topic}`` and its bulk form, as Dapr answers them.

The HTTP front end of :class:`tether.platform.pubsub.publishing.Publisher`: it reads the
path, body, Content-Type, ``metadata.*`` query parameters and trace headers, and answers
204, or for a bulk publish the broker refused, Dapr's ``failedEntries``. The envelope
follows Dapr's (docs/http-api.md, :mod:`tether.platform.events.envelope`).
"""

from __future__ import annotations

from aiohttp import web

from tether.platform.pubsub import Publisher, PubSubRegistry, parse_bulk
from tether.platform.resiliency import Resiliency
from tether.sidecar.request import header, request_metadata, trace_headers


class PublishApi:
    """The publish handlers of one sidecar."""

    def __init__(
        self, registry: PubSubRegistry, app_id: str, resiliency: Resiliency | None = None
    ) -> None:
        self.publisher = Publisher(registry, app_id, resiliency)

    async def publish(self, request: web.Request) -> web.StreamResponse:
        target = self.publisher.resolve(request.match_info["pubsub"], request.match_info["topic"])
        body = await request.read()
        await self.publisher.publish(
            target,
            body,
            header(request, "Content-Type"),
            request_metadata(request),
            trace_headers(request),
        )
        return web.Response(status=204)

    async def publish_bulk(self, request: web.Request) -> web.StreamResponse:
        target = self.publisher.resolve(request.match_info["pubsub"], request.match_info["topic"])
        entries = parse_bulk(await request.read())
        failure = await self.publisher.publish_bulk(
            target, entries, request_metadata(request), trace_headers(request)
        )
        if failure is None:
            return web.Response(status=204)
        error = failure.error
        failed = [{"entryId": entry_id, "error": error.message} for entry_id in failure.entry_ids]
        return web.json_response(
            {"failedEntries": failed, "errorCode": error.code}, status=error.status
        )
