"""Dapr's Jobs API over HTTP: ``POST|GET|DELETE /v1.0-alpha1/jobs/{name}`` (and the
``/v1.0`` paths Dapr 1.18 made stable), plus Tether's own ``GET /v1.0-alpha1/jobs``, the
list of the app's jobs with the trigger due next.

``POST`` answers 204 once the job is stored and its first trigger is on the broker;
``GET`` answers Dapr's ``Job`` JSON; ``DELETE`` answers 204 (an unknown job too, as Dapr).
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from tether.platform.blocks import BlockContext
from tether.platform.events import format_time
from tether.platform.jobs import JobsService, read_request
from tether.platform.jobs.model import malformed
from tether.platform.json_body import JsonBodyError, read_json
from tether.sidecar.api_block import ServiceRoutes

PREFIXES = ("/v1.0-alpha1", "/v1.0")
LIST_PATH = "/v1.0-alpha1/jobs"


class JobsApi(ServiceRoutes[JobsService]):
    """The jobs block's HTTP routes over its :class:`JobsService`."""

    def routes(self) -> Sequence[web.RouteDef]:
        routes = [web.get(LIST_PATH, self.list)]
        for prefix in PREFIXES:
            path = f"{prefix}/jobs/{{name}}"
            routes += [web.post(path, self.schedule), web.get(path, self.get),
                       web.delete(path, self.delete)]
        return routes

    async def schedule(self, request: web.Request) -> web.StreamResponse:
        try:
            body = read_json(await request.read())
        except JsonBodyError as exc:
            raise malformed(str(exc)) from None
        job, overwrite = read_request(request.match_info["name"], body)
        await self.service.schedule(job, overwrite)
        return web.Response(status=204)

    async def get(self, request: web.Request) -> web.StreamResponse:
        job = await self.service.get(request.match_info["name"])
        return web.json_response(job.to_json())

    async def delete(self, request: web.Request) -> web.StreamResponse:
        await self.service.delete(request.match_info["name"])
        return web.Response(status=204)

    async def list(self, request: web.Request) -> web.StreamResponse:
        records = await self.service.list()
        return web.json_response({"jobs": [
            {**r.job.to_json(), "nextTrigger": format_time(r.next_time),
             "triggered": r.next_trigger}
            for r in records
        ]})


def jobs_block(context: BlockContext) -> JobsApi:
    """The Jobs API; present even without a state store or pub/sub, so a call gets Dapr's
    error shape saying what is missing."""
    return JobsApi(JobsService.from_context(context))
