"""What the sidecar mounts for a block: its HTTP routes over the block's service."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, Protocol, TypeVar

from aiohttp import web

from tether.platform.blocks import Block

S = TypeVar("S", bound=Block)


class ApiBlock(Block, Protocol):
    """One building block's HTTP API and the resources it holds."""

    def routes(self) -> Sequence[web.RouteDef]:
        """The block's routes (full paths, e.g. ``/v1.0/state/{store}``)."""


class ServiceRoutes(Generic[S]):
    """A block's HTTP front end: its ``service`` opens and closes with the sidecar; the
    subclass adds the routes and the handlers that translate requests into its calls."""

    def __init__(self, service: S) -> None:
        self.service = service

    async def start(self) -> None:
        await self.service.start()

    async def close(self) -> None:
        await self.service.close()
