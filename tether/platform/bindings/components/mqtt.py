"""``bindings.mqtt3`` (and ``bindings.mqtt``): publish to a topic (output ``create``) and
subscribe to one (input), through aiomqtt (MQTT 3.1.1).

Input: the subscriber connects as ``<consumerID>-consumer`` (the producer as
``<consumerID>-producer``, as Dapr names them: a broker allows one connection per client id)
and PUBACKs a QoS 1 message only after ``emit`` returned. aiomqtt 2.5 has no manual-ack
option of its own, so the paho client under it is switched to manual acks
(``manual_ack_set``) and acked through paho's ``ack``. A message whose emit failed is not
acked and the error ends ``run()``: with ``cleanSession: false`` (the default) the broker
keeps it in the session and sends it again when the same client id reconnects.

A topic ``$share/<group>/<filter>`` is a shared subscription: the broker spreads the
messages over the group's members, so replicas may all read (``exclusive = False``); any
other topic is read by one replica at a time (``exclusive = True``), or every replica would
get every message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt

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

#: how long connecting, subscribing and one publish may take
TIMEOUT = 10.0
#: Dapr's constant pause between two attempts of a failed emit (backOffMaxRetries)
RETRY_PAUSE = 5.0
_SCHEMES = {"tcp": False, "mqtt": False, "ssl": True, "tls": True, "mqtts": True,
            "tcps": True}
_SHARED = "$share/"


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """The component's metadata, read once in :func:`build`."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    topic: str
    consumer_id: str
    qos: int
    retain: bool
    clean_session: bool
    retries: int  # -1: without end

    @classmethod
    def from_component(cls, component: Component) -> MqttSettings:
        url = metadata.required(component, "url", "tcp://[user[:password]@]host[:port]")
        parts = urlsplit(url)
        if parts.scheme not in _SCHEMES or not parts.hostname:
            raise MetadataError("url", "must be tcp://host:port (or ssl:// for TLS)")
        try:
            port = parts.port or (8883 if _SCHEMES[parts.scheme] else 1883)
        except ValueError:
            raise MetadataError("url", "has a port that is not a number 1-65535") from None
        topic = metadata.required(component, "topic")
        if topic.startswith(_SHARED) and topic.count("/") < 2:
            raise MetadataError("topic", f"{topic!r} must be $share/<group>/<topic>")
        qos = metadata.integer(component, "qos", minimum=0)
        if qos is not None and qos > 2:
            raise MetadataError("qos", f"{qos} must be 0, 1 or 2")
        retries = metadata.integer(component, "backOffMaxRetries", minimum=-1)
        return cls(
            host=parts.hostname,
            port=port,
            tls=_SCHEMES[parts.scheme],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            topic=topic,
            consumer_id=metadata.required(component, "consumerID", "the MQTT client id"),
            qos=1 if qos is None else qos,
            retain=metadata.boolean(component, "retain"),
            clean_session=metadata.boolean(component, "cleanSession"),
            retries=retries or 0,
        )

    @property
    def shared(self) -> bool:
        return self.topic.startswith(_SHARED)

    @property
    def publish_topic(self) -> str:
        """Where ``create`` publishes by default: the topic without a ``$share/<group>/``."""
        return self.topic.split("/", 2)[2] if self.shared else self.topic

    def client(self, suffix: str) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host, self.port, username=self.username, password=self.password,
            identifier=f"{self.consumer_id}-{suffix}", clean_session=self.clean_session,
            timeout=TIMEOUT, tls_context=ssl.create_default_context() if self.tls else None,
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def build(component: Component) -> Binding:
    settings = MqttSettings.from_component(component)
    return Binding(name=component.name, type=component.type,
                   output=MqttOutput(settings), input=MqttInput(settings))


def _is_filter(topic: str) -> bool:
    return "+" in topic or "#" in topic or topic.startswith(_SHARED)


class MqttOutput:
    """``create``: one message on ``topic`` (request metadata ``topic`` overrides it)."""

    operations = frozenset({CREATE})

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self._client: aiomqtt.Client | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        async with self._lock:
            if self._client is None:
                self._client = await self._connect()

    async def _connect(self) -> aiomqtt.Client:
        client = self.settings.client("producer")
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise BindingFailedError(
                f"cannot reach the MQTT broker at {self.settings.address}: {exc}") from exc
        return client

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        topic, qos, retain = self._target(request.metadata)
        client = self._client
        if client is None:
            raise BindingFailedError("the MQTT connection is not started")
        try:
            await client.publish(topic, request.data, qos=qos, retain=retain, timeout=TIMEOUT)
        except aiomqtt.MqttError as first:
            # aiomqtt does not reconnect: a dropped connection is replaced once, then retried
            log.debug("publishing to %s failed (%s); reconnecting", topic, first)
            client = await self._reconnect(client)
            try:
                await client.publish(topic, request.data, qos=qos, retain=retain,
                                     timeout=TIMEOUT)
            except aiomqtt.MqttError as exc:
                raise BindingFailedError(f"publishing to {topic!r} failed: {exc}") from exc
        return BindingResponse()

    def _target(self, fields: Mapping[str, str]) -> tuple[str, int, bool]:
        topic = fields.get("topic") or self.settings.publish_topic
        if _is_filter(topic):
            raise BindingRequestError(
                f"metadata topic {topic!r} is a filter (+, # or $share), not a topic to "
                f"publish to")
        qos_text = (fields.get("qos") or "").strip()
        if qos_text and qos_text not in ("0", "1", "2"):
            raise BindingRequestError(f"metadata qos {qos_text!r} must be 0, 1 or 2")
        retain_text = (fields.get("retain") or "").strip().lower()
        if retain_text and retain_text not in ("true", "false"):
            raise BindingRequestError(f"metadata retain {retain_text!r} must be true or false")
        return (topic, int(qos_text) if qos_text else self.settings.qos,
                retain_text == "true" if retain_text else self.settings.retain)

    async def _reconnect(self, broken: aiomqtt.Client) -> aiomqtt.Client:
        async with self._lock:
            if self._client is not broken and self._client is not None:
                return self._client  # another call replaced it already
            self._client = None
            await _disconnect(broken)
            self._client = await self._connect()
            return self._client

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
        if client is not None:
            await _disconnect(client)


async def _disconnect(client: aiomqtt.Client) -> None:
    with contextlib.suppress(aiomqtt.MqttError, OSError, RuntimeError):
        await client.__aexit__(None, None, None)


class MqttInput:
    """Subscribes to ``topic``; see the module docstring for the ack point."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings
        self.exclusive = not settings.shared
        self._client: aiomqtt.Client | None = None

    async def run(self, emit: Emit) -> None:
        settings = self.settings
        client = settings.client("consumer")
        # the paho client under aiomqtt: PUBACK only when _deliver says so
        paho: Any = client._client
        paho.manual_ack_set(True)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            raise BindingFailedError(
                f"cannot reach the MQTT broker at {settings.address}: {exc}") from exc
        self._client = client
        try:
            try:
                await client.subscribe(settings.topic, qos=settings.qos, timeout=TIMEOUT)
                async for message in client.messages:
                    await self._deliver(message, emit)
                    if message.qos > 0:
                        paho.ack(message.mid, message.qos)
            except aiomqtt.MqttError as exc:
                raise BindingFailedError(
                    f"reading {settings.topic!r} from {settings.address} failed: {exc}"
                ) from exc
        finally:
            if self._client is client:  # else close() disconnected it already
                self._client = None
                await _disconnect(client)

    async def _deliver(self, message: aiomqtt.Message, emit: Emit) -> None:
        """Emit, retried ``backOffMaxRetries`` times (-1: until it works) RETRY_PAUSE apart,
        as Dapr's component does; the last failure propagates, the message not acked."""
        payload = message.payload
        data = payload if isinstance(payload, bytes | bytearray) else (
            b"" if payload is None else str(payload).encode())
        topic = message.topic.value
        event = InputMessage(data=bytes(data), metadata={"topic": topic}, key=topic)
        attempt = 0
        while True:
            try:
                await emit(event)
                return
            except Exception as exc:
                retries = self.settings.retries
                if retries >= 0 and attempt >= retries:
                    raise
                attempt += 1
                log.warning("%s: emitting a message failed (%s); attempt %d in %ss",
                            topic, exc, attempt + 1, RETRY_PAUSE)
                await asyncio.sleep(RETRY_PAUSE)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await _disconnect(client)
