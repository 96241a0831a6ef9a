"""Dapr's envelope: the attributes Dapr gives every event it publishes for an app.

One place for them, used by the sidecar's publish, the outbox and ``tether.App``, so that
the three cannot drift: ``source`` is the app id, ``type`` ``com.dapr.event.sent``, the
``topic`` and ``pubsubname`` extensions name where the event went, the W3C trace headers
travel as extensions (``traceid`` repeating ``traceparent``; a call without a valid one
gets a new trace, so every event carries the three fields as Dapr's do), and the publish metadata
``ttlInSeconds`` and ``partitionKey`` become the ``expiration`` and ``partitionkey``
extensions.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from tether.platform.errors import TetherError
from tether.platform.events.event import SPEC_VERSION, format_time, utc_now
from tether.platform.tracing import ensure as ensure_trace

DAPR_EVENT_TYPE = "com.dapr.event.sent"
#: publish metadata that shapes the envelope
TTL_IN_SECONDS = "ttlInSeconds"
PARTITION_KEY = "partitionKey"
#: the extension a ttl becomes: the time after which the event is not delivered
EXPIRATION = "expiration"
#: the largest ``ttlInSeconds`` (int32, as Dapr bounds a state TTL): about 68 years, so
#: the expiration time is one every language's date type can hold
MAX_TTL_SECONDS = 2**31 - 1


class EnvelopeMetadataError(TetherError, ValueError):
    """Publish metadata Dapr refuses (a bad ``ttlInSeconds``); the message names it."""


def required_attributes(app_id: str, event_id: str) -> dict[str, Any]:
    """The four required attributes of an event Dapr publishes for ``app_id`` (all a raw
    payload's envelope has)."""
    return {"specversion": SPEC_VERSION, "id": event_id, "source": app_id,
            "type": DAPR_EVENT_TYPE}


def envelope(
    app_id: str,
    event_id: str,
    *,
    topic: str,
    pubsub: str,
    time: str | None = None,
    partition_key: str | None = None,
    trace: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Dapr's attributes of an event published to ``topic`` of ``pubsub``.

    ``time`` (RFC 3339) is left out when None (``tether.App`` has never stamped its events);
    ``trace`` holds the ``traceparent`` / ``tracestate`` headers of the call (none, or an
    invalid one: a new trace)."""
    attributes = required_attributes(app_id, event_id)
    if time is not None:
        attributes["time"] = time
    attributes.update(topic=topic, pubsubname=pubsub)
    if partition_key is not None:
        attributes["partitionkey"] = partition_key
    trace = ensure_trace(trace)
    attributes["traceid"] = trace["traceparent"]
    attributes.update(trace)
    return attributes


def metadata_extensions(metadata: Mapping[str, str]) -> dict[str, str]:
    """The extensions publish metadata sets: ``expiration`` (now + ``ttlInSeconds``, a whole
    number from 0 to MAX_TTL_SECONDS, else EnvelopeMetadataError) and ``partitionkey`` (a
    non-empty ``partitionKey``)."""
    extensions: dict[str, str] = {}
    ttl = metadata.get(TTL_IN_SECONDS)
    if ttl is not None:
        if not (ttl.isascii() and ttl.isdigit()) or int(ttl) > MAX_TTL_SECONDS:
            raise EnvelopeMetadataError(
                f"{TTL_IN_SECONDS} {ttl!r} is not a whole number of seconds from 0 to "
                f"{MAX_TTL_SECONDS}"
            )
        seconds = int(ttl)
        extensions[EXPIRATION] = format_time(utc_now() + timedelta(seconds=seconds))
    key = metadata.get(PARTITION_KEY)
    if key:
        extensions["partitionkey"] = key
    return extensions
