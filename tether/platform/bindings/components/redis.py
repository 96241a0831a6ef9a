"""``bindings.redis``: Dapr's create (SET), get, delete and increment on one Redis key.

Connection metadata is the Redis components' one (``redisHost``, ``redisPassword``,
``redisUsername``, ``redisDB``, ``enableTLS``: :class:`~tether.platform.components.metadata.
RedisSettings`). Every call names its key in request metadata ``key``. As in Dapr, a get of a
missing key answers empty data (204), not a 404; ``ttlInSeconds`` on create and increment
sets the key's expiry, here in the same round trip as the write (Dapr sends a second
EXPIRE, so a failure in between left a key without its expiry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.exceptions import RedisError, ResponseError

from tether.platform.bindings.binding import (
    CREATE,
    DELETE,
    GET,
    Binding,
    BindingFailedError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
)
from tether.platform.components import Component, metadata

if TYPE_CHECKING:
    import redis.asyncio as aioredis

INCREMENT = "increment"
TTL = "ttlInSeconds"


def _ttl(request: BindingRequest) -> int | None:
    """``ttlInSeconds`` as Dapr reads it: a whole number of seconds above zero."""
    value = request.metadata.get(TTL, "")
    if not value:
        return None
    if not value.isascii() or not value.lstrip("+-").isdigit() or int(value) <= 0:
        raise BindingRequestError(f"metadata {TTL} {value!r} must be a whole number of "
                                  "seconds above zero")
    return int(value)


class RedisBinding:
    """The output side over one pooled client (connects at start, as Dapr pings at init)."""

    operations = frozenset({CREATE, GET, DELETE, INCREMENT})

    def __init__(self, settings: metadata.RedisSettings) -> None:
        self.settings = settings
        self._client: aioredis.Redis | None = None

    async def start(self) -> None:
        client = self.settings.client()
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise BindingFailedError(f"redis binding: cannot reach {self.settings.address}: "
                                     f"{exc}") from exc
        self._client = client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        if self._client is None:
            raise BindingFailedError("the redis binding is not started")
        key = request.metadata.get("key", "")
        if not key:
            raise BindingRequestError("metadata key is required (the Redis key)")
        client = self._client
        try:
            if request.operation == CREATE:
                await client.set(key, request.data, ex=_ttl(request))
            elif request.operation == GET:
                if metadata.is_truthy(request.metadata.get("delete")):
                    value = await client.getdel(key)
                else:
                    value = await client.get(key)
                # bytes: the client does not decode responses
                return BindingResponse(data=value.encode() if isinstance(value, str) else value)
            elif request.operation == DELETE:
                await client.delete(key)
            elif request.operation == INCREMENT:
                ttl = _ttl(request)
                async with client.pipeline(transaction=True) as pipe:
                    pipe.incr(key)
                    if ttl is not None:
                        pipe.expire(key, ttl)
                    await pipe.execute()
            else:
                raise BindingRequestError(f"unsupported operation {request.operation!r}")
        except ResponseError as exc:  # WRONGTYPE, not an integer: the request's fault
            raise BindingRequestError(f"redis: {exc}") from None
        except RedisError as exc:
            raise BindingFailedError(f"redis at {self.settings.address}: {exc}") from exc
        return BindingResponse()


def build(component: Component) -> Binding:
    return Binding(name=component.name, type=component.type,
                   output=RedisBinding(metadata.RedisSettings.from_component(component)))
