"""``bindings.rabbitmq``: publish to a queue (output ``create``) and consume it (input),
through aio-pika.

Both sides declare ``queueName`` with the component's settings, as Dapr does (a queue that
exists with other arguments is refused by RabbitMQ: a 500 naming the mismatch). Output
publishes persistent messages on the default exchange with publisher confirms, so ``create``
returns once RabbitMQ has the message. Input consumes with manual acks: a delivery is acked
only after ``emit`` returned and nacked with requeue when it raised, and every delivery not
acked when the connection closes goes back to the queue. Consumers of one queue share its
messages, so the source is not exclusive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, ChannelPreconditionFailed
from pamqp.exceptions import PAMQPException

from tether.platform.bindings.binding import (
    CREATE,
    Binding,
    BindingFailedError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
    Emit,
    InputMessage,
)
from tether.platform.components import Component, metadata
from tether.platform.components.metadata import MetadataError

log = logging.getLogger(__name__)

#: how long connecting may take (an unreachable host fails start() or run(), not later)
CONNECT_TIMEOUT = 10.0
DEFAULT_CONTENT_TYPE = "text/plain"
#: what aio-pika raises when the server or the connection fails (aio-pika's own
#: CONNECTION_EXCEPTIONS also holds RuntimeError, which would catch far more)
_ERRORS = (AMQPError, ChannelInvalidStateError, PAMQPException, OSError, TimeoutError)


@dataclass(frozen=True, slots=True)
class RabbitSettings:
    """The component's metadata, read once in :func:`build`."""

    host: str
    queue: str
    durable: bool
    delete_when_unused: bool
    exclusive: bool
    prefetch_count: int
    ttl_seconds: int | None
    max_priority: int | None
    content_type: str
    reconnect_wait: float

    @classmethod
    def from_component(cls, component: Component) -> RabbitSettings:
        host = metadata.required(component, "host", "amqp://user:password@host:port")
        if not host.startswith(("amqp://", "amqps://")):
            raise MetadataError("host", "must be an amqp:// or amqps:// URL")
        max_priority = metadata.integer(component, "maxPriority", minimum=1)
        if max_priority is not None and max_priority > 255:
            raise MetadataError("maxPriority", f"{max_priority} must be between 1 and 255")
        # Dapr's field is reconnectWaitInSeconds (whole seconds); reconnectWait a duration
        wait_seconds = metadata.integer(component, "reconnectWaitInSeconds", minimum=1)
        return cls(
            host=host,
            queue=metadata.required(component, "queueName"),
            durable=metadata.boolean(component, "durable"),
            delete_when_unused=metadata.boolean(component, "deleteWhenUnused"),
            exclusive=metadata.boolean(component, "exclusive"),
            prefetch_count=metadata.integer(component, "prefetchCount", minimum=0) or 0,
            ttl_seconds=metadata.integer(component, "ttlInSeconds", minimum=1),
            max_priority=max_priority,
            content_type=metadata.text(component, "contentType") or DEFAULT_CONTENT_TYPE,
            reconnect_wait=float(wait_seconds) if wait_seconds is not None
            else metadata.duration(component, "reconnectWait", 5.0),
        )

    def queue_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {}
        if self.ttl_seconds is not None:
            arguments["x-message-ttl"] = self.ttl_seconds * 1000
        if self.max_priority is not None:
            arguments["x-max-priority"] = self.max_priority
        return arguments

    async def declare(self, channel: AbstractChannel) -> AbstractQueue:
        try:
            return await channel.declare_queue(
                self.queue, durable=self.durable, exclusive=self.exclusive,
                auto_delete=self.delete_when_unused, arguments=self.queue_arguments())
        except ChannelPreconditionFailed as exc:
            raise BindingFailedError(
                f"queue {self.queue!r} exists with other settings than the component's "
                f"(durable, deleteWhenUnused, exclusive, ttlInSeconds, maxPriority): "
                f"{exc}") from exc


def build(component: Component) -> Binding:
    settings = RabbitSettings.from_component(component)
    return Binding(name=component.name, type=component.type,
                   output=RabbitOutput(settings), input=RabbitInput(settings))


async def _connect(settings: RabbitSettings, robust: bool) -> AbstractConnection:
    try:
        connection: AbstractConnection = await asyncio.wait_for(
            aio_pika.connect_robust(settings.host, timeout=CONNECT_TIMEOUT,
                                    reconnect_interval=settings.reconnect_wait) if robust
            else aio_pika.connect(settings.host, timeout=CONNECT_TIMEOUT), CONNECT_TIMEOUT)
    except _ERRORS as exc:
        raise BindingFailedError(f"cannot reach RabbitMQ for queue {settings.queue!r}: "
                                 f"{exc!r}") from exc
    return connection


class RabbitOutput:
    """``create``: one persistent message on ``queueName``, confirmed by the broker."""

    operations = frozenset({CREATE})

    def __init__(self, settings: RabbitSettings) -> None:
        self.settings = settings
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None

    async def start(self) -> None:
        if self._connection is not None:
            return
        # robust: reconnects (every reconnectWait) and re-opens the channel after an outage
        connection = await _connect(self.settings, robust=True)
        try:
            channel = await connection.channel(publisher_confirms=True)
            await self.settings.declare(channel)
        except BaseException as exc:
            with contextlib.suppress(*_ERRORS):
                await connection.close()
            if isinstance(exc, _ERRORS):
                raise BindingFailedError(f"opening queue {self.settings.queue!r} failed: "
                                         f"{exc!r}") from exc
            raise
        self._connection, self._channel = connection, channel

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        channel = self._channel
        if channel is None:
            raise BindingFailedError("the RabbitMQ connection is not started")
        message = self._message(request)
        try:
            await channel.default_exchange.publish(message, routing_key=self.settings.queue)
        except _ERRORS as exc:
            raise BindingFailedError(
                f"publishing to queue {self.settings.queue!r} failed: {exc!r}") from exc
        return BindingResponse()

    def _message(self, request: BindingRequest) -> aio_pika.Message:
        fields = request.metadata
        return aio_pika.Message(
            body=request.data,
            # as Dapr: every request metadata entry also travels as a header
            headers=dict(fields),
            content_type=fields.get("contentType") or self.settings.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            expiration=_whole(fields, "ttlInSeconds", 0, None),
            priority=_whole(fields, "priority", 0, 255),
        )

    async def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with contextlib.suppress(*_ERRORS):
                await connection.close()


def _whole(fields: Mapping[str, str], name: str, low: int, high: int | None) -> int | None:
    """A whole-number request metadata field; BindingRequestError naming it when bad."""
    value = (fields.get(name) or "").strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or int(value) < low \
            or (high is not None and int(value) > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise BindingRequestError(f"metadata {name} {value!r} must be a whole number {bounds}")
    return int(value)


class RabbitInput:
    """Consumes ``queueName`` with manual acks; see the module docstring."""

    exclusive = False

    def __init__(self, settings: RabbitSettings) -> None:
        self.settings = settings
        self._connection: AbstractConnection | None = None
        self._emit_error: BaseException | None = None

    async def run(self, emit: Emit) -> None:
        # not robust: a lost connection ends run() (the worker starts it again), so no
        # delivery is acked on a channel other than the one it came on
        connection = await _connect(self.settings, robust=False)
        self._connection = connection
        try:
            try:
                channel = await connection.channel()
                await channel.set_qos(prefetch_count=self.settings.prefetch_count)
                queue = await self.settings.declare(channel)
                async with queue.iterator() as deliveries:
                    async for delivery in deliveries:
                        await self._deliver(delivery, emit)
            except _ERRORS as exc:
                if exc is self._emit_error:  # emit's own failure propagates as it is
                    raise
                raise BindingFailedError(
                    f"consuming queue {self.settings.queue!r} failed: {exc!r}") from exc
            raise BindingFailedError(f"queue {self.settings.queue!r}: the broker cancelled "
                                     f"the consumer")
        finally:
            if self._connection is connection:  # else close() closed it already
                self._connection = None
                with contextlib.suppress(*_ERRORS):
                    await connection.close()

    async def _deliver(self, delivery: AbstractIncomingMessage, emit: Emit) -> None:
        try:
            await emit(_message(delivery))
        except BaseException as exc:
            self._emit_error = exc
            # back on the queue for the next consumer (closing the channel would do it too)
            with contextlib.suppress(*_ERRORS):
                await delivery.nack(requeue=True)
            raise
        await delivery.ack()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(*_ERRORS):
                await connection.close()


def _message(delivery: AbstractIncomingMessage) -> InputMessage:
    """A delivery as Dapr's RabbitMQ binding hands it on: its string headers as metadata."""
    fields: dict[str, str] = {}
    for name, value in (delivery.headers or {}).items():
        if isinstance(value, str):
            fields[name] = value
        elif isinstance(value, bytes):
            fields[name] = value.decode("utf-8", "replace")
    return InputMessage(data=delivery.body, metadata=fields,
                        content_type=delivery.content_type or None)
