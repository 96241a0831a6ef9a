"""The request and reply of one invocation as CloudEvents, and the headers that cross.

Both events carry the HTTP body as binary data (every backend returns it byte for byte);
what HTTP says around it travels in string extensions (CloudEvents extension values are
strings on every transport): the verb, the method path with its query, the headers as a
JSON list of pairs (a name may repeat, as Set-Cookie does), the caller's deadline and the
reply topic. The reply names the request it answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from tether.platform.events import CloudEvent
from tether.platform.events.event import BINARY_CONTENT_TYPE

REQUEST_TYPE = "io.tether.invoke.request"
REPLY_TYPE = "io.tether.invoke.reply"
TOPIC_PREFIX = "tether.invoke."

# extension names (lower-case letters and digits, as CloudEvents requires)
VERB = "invokeverb"
PATH = "invokepath"
HEADERS = "invokeheaders"
DEADLINE = "invokedeadline"  # wall-clock milliseconds since the epoch
REPLY_TO = "invokereplyto"
CALLEE = "invokecallee"
IN_REPLY_TO = "invokerequest"
STATUS = "invokestatus"
TRACE = ("traceparent", "tracestate")
PARTITION_KEY = "partitionkey"  # the brokers' ordering key

#: headers that belong to one connection, not to the call (RFC 9110 7.6.1), and those the
#: sidecars set themselves; never passed on in either direction
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
})

Headers = list[tuple[str, str]]


def request_topic(app_id: str) -> str:
    """The topic the sidecars of ``app_id`` take calls from (in consumer group ``app_id``)."""
    return TOPIC_PREFIX + app_id


def async_topic(app_id: str) -> str:
    """The topic of ``app_id``'s durable async calls: delivered as pub/sub events are, with
    retries, per-key order and the dead-letter topic :func:`async_dead_letter_topic`."""
    return f"{TOPIC_PREFIX}async.{app_id}"


def async_dead_letter_topic(app_id: str) -> str:
    """Where an async call the app refused (or that kept failing) ends up."""
    return async_topic(app_id) + ".deadletter"


def reply_topic(app_id: str, instance: str) -> str:
    """One calling sidecar's reply topic (consumed by that sidecar alone)."""
    return f"{TOPIC_PREFIX}{app_id}.reply.{instance}"


def end_to_end(headers: Iterable[tuple[str, str]], drop: Iterable[str] = ()) -> Headers:
    """``headers`` without the hop-by-hop ones, those a Connection header names, and
    ``drop`` (lower-case names)."""
    pairs = list(headers)
    named = {
        token.strip().lower()
        for name, value in pairs if name.lower() == "connection"
        for token in value.split(",")
    }
    skip = HOP_BY_HOP | named | set(drop)
    return [(name, value) for name, value in pairs if name.lower() not in skip]


def with_trace(headers: Headers, trace: Mapping[str, str]) -> Headers:
    """``headers`` with ``trace`` (W3C headers) in place of their own trace headers."""
    kept = [(n, v) for n, v in headers if n.lower() not in TRACE]
    return kept + [(n, v) for n, v in trace.items() if n in TRACE]


def trace_of(headers: Headers) -> dict[str, str]:
    """The W3C trace headers among ``headers``."""
    return {n.lower(): v for n, v in headers if n.lower() in TRACE}


@dataclass(frozen=True, slots=True)
class InvokeRequest:
    id: str
    caller: str
    callee: str
    verb: str
    #: the method path as received (percent-encoding kept), with ``?query`` if any
    path: str
    headers: Headers
    body: bytes
    #: wall-clock seconds since the epoch after which the caller no longer waits (an async
    #: call: 0, nobody waits)
    deadline: float
    #: the caller's reply topic ("" for an async call: nobody waits for the answer)
    reply_to: str
    #: an async call's ordering key: calls with one key reach the app one at a time, in order
    key: str | None = None

    def remaining(self, now: float | None = None) -> float:
        """Seconds left before the caller gives up (<= 0: it has)."""
        return self.deadline - (time.time() if now is None else now)

    def to_event(self) -> CloudEvent:
        extensions = {
            VERB: self.verb, PATH: self.path, HEADERS: _dumps(self.headers),
            DEADLINE: str(int(self.deadline * 1000)), REPLY_TO: self.reply_to,
            CALLEE: self.callee,
        }
        lower = {name.lower(): value for name, value in self.headers}
        extensions.update({h: lower[h] for h in TRACE if lower.get(h)})
        if self.key is not None:
            extensions[PARTITION_KEY] = self.key
        return CloudEvent(
            id=self.id, source=self.caller, type=REQUEST_TYPE,
            datacontenttype=BINARY_CONTENT_TYPE, data=self.body, extensions=extensions,
        )

    @classmethod
    def from_event(cls, event: CloudEvent) -> InvokeRequest:
        """ValueError for an event that is not a readable request."""
        ext = event.extensions
        if event.type != REQUEST_TYPE:
            raise ValueError(f"type {event.type!r} is not {REQUEST_TYPE}")
        try:
            return cls(
                id=event.id, caller=event.source, callee=ext[CALLEE], verb=ext[VERB],
                path=ext[PATH], headers=_loads(ext[HEADERS]), body=_bytes(event.data),
                deadline=int(ext[DEADLINE]) / 1000, reply_to=ext[REPLY_TO],
                key=ext.get(PARTITION_KEY),
            )
        except KeyError as exc:
            raise ValueError(f"extension {exc} is missing") from None


@dataclass(frozen=True, slots=True)
class InvokeReply:
    request_id: str
    status: int
    headers: Headers
    body: bytes

    def to_event(self, source: str, event_id: str) -> CloudEvent:
        return CloudEvent(
            id=event_id, source=source, type=REPLY_TYPE, datacontenttype=BINARY_CONTENT_TYPE,
            data=self.body,
            extensions={IN_REPLY_TO: self.request_id, STATUS: str(self.status),
                        HEADERS: _dumps(self.headers)},
        )

    @classmethod
    def from_event(cls, event: CloudEvent) -> InvokeReply:
        """ValueError for an event that is not a readable reply."""
        ext = event.extensions
        if event.type != REPLY_TYPE:
            raise ValueError(f"type {event.type!r} is not {REPLY_TYPE}")
        try:
            return cls(request_id=ext[IN_REPLY_TO], status=int(ext[STATUS]),
                       headers=_loads(ext[HEADERS]), body=_bytes(event.data))
        except KeyError as exc:
            raise ValueError(f"extension {exc} is missing") from None


def _dumps(headers: Sequence[tuple[str, str]]) -> str:
    return json.dumps([[n, v] for n, v in headers], ensure_ascii=False, separators=(",", ":"))


def _loads(text: str) -> Headers:
    pairs = json.loads(text)
    if not isinstance(pairs, list) or not all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in pairs
    ):
        raise ValueError("headers must be a list of [name, value] strings")
    return [(n, v) for n, v in pairs]


def _bytes(data: object) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode()
    raise ValueError(f"data of type {type(data).__name__} is not a body")
