"""Pub/sub on :class:`tether.Client`: ``publish`` and ``publish_bulk`` over the sidecar's
``/v1.0/publish`` API (docs/client.md, docs/http-api.md).

The request is built and the answer read by the functions here; each method is written
once, for both clients (``client_core.py``), so both send the same bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tether.platform.events import CloudEvent
from tether.platform.events.json_format import CONTENT_TYPE as CLOUDEVENTS_JSON
from tether.platform.events.json_format import event_object, to_json
from tether.sdk.client_core import ClientBase, operation
from tether.sdk.client_http import Call, Reply, metadata_params, segment
from tether.sdk.client_plan import Plan, Send

JSON = "application/json"
TEXT = "text/plain"
BINARY = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class PublishEntry:
    """One event of a bulk publish. ``data`` is encoded as in ``publish``; ``metadata``
    (keys without the ``metadata.`` prefix, e.g. ``partitionKey``) applies to this entry
    only. Without ``entry_id`` the entry's index in the list is its id."""

    data: Any
    entry_id: str | None = None
    content_type: str | None = None
    metadata: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class FailedEntry:
    """An entry the sidecar could not publish, with the entry as it was given."""

    entry_id: str
    error: str
    error_code: str | None
    entry: PublishEntry | None


# --- building requests --------------------------------------------------------------------
def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(content_type: str) -> bool:
    media = _media(content_type)
    return media == JSON or media.endswith("+json")


def _json_bytes(data: Any) -> bytes:
    try:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"cannot publish {type(data).__name__}: give bytes, str, a CloudEvent or a "
            f"JSON-serializable value ({exc})"
        ) from exc


def encode_body(data: Any, content_type: str | None) -> tuple[bytes, str]:
    """The request body and Content-Type for ``data``: a CloudEvent as
    ``application/cloudevents+json``, bytes as octet-stream, str as text/plain, anything
    else as JSON; ``content_type`` overrides the type (not the encoding)."""
    if isinstance(data, CloudEvent):
        if content_type is not None and _media(content_type) != CLOUDEVENTS_JSON:
            raise ValueError("a CloudEvent is published as application/cloudevents+json")
        return to_json(data), CLOUDEVENTS_JSON
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), content_type or BINARY
    if isinstance(data, str):
        return data.encode(), content_type or TEXT
    return _json_bytes(data), content_type or JSON


def _seconds(delay: timedelta | float) -> str:
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    # plain seconds, fixed-point: the sidecar reads no exponent (1e+08)
    return f"{seconds:.6f}".rstrip("0").rstrip(".")


def _topic(topic: str) -> str:
    return "/".join(segment(part) for part in topic.split("/"))


def _raw(metadata: Mapping[str, str] | None) -> bool:
    return str((metadata or {}).get("rawPayload", "")).lower() == "true"


def bulk_entry(entry: PublishEntry, entry_id: str, raw: bool) -> dict[str, Any]:
    """One entry of Dapr's bulk body ``{entryId, event, contentType, metadata}``.

    The body is JSON, so ``event`` is a JSON value: the sidecar publishes a JSON value as
    JSON and a string under a non-JSON type as its UTF-8 bytes. Bytes that are not UTF-8
    travel inside a CloudEvent as ``data_base64`` (unless the request is raw)."""
    data, content_type = entry.data, entry.content_type
    item: dict[str, Any] = {"entryId": entry_id}
    if isinstance(data, CloudEvent):
        item.update(event=event_object(data), contentType=CLOUDEVENTS_JSON)
    elif isinstance(data, (bytes, bytearray, memoryview)):
        if raw or _raw(entry.metadata):
            try:
                item.update(event=bytes(data).decode(), contentType=content_type or BINARY)
            except UnicodeDecodeError:
                raise ValueError(
                    f"entry {entry_id}: raw bytes that are not UTF-8 cannot travel in a bulk "
                    "publish (its body is JSON); use publish()"
                ) from None
        else:
            wrapped = {"datacontenttype": content_type or BINARY,
                       "data_base64": base64.b64encode(bytes(data)).decode("ascii")}
            item.update(event=wrapped, contentType=CLOUDEVENTS_JSON)
    elif isinstance(data, str):
        content_type = content_type or TEXT
        if _is_json(content_type):
            try:
                value = json.loads(data)  # already-serialized JSON, as publish() sends it
            except ValueError:
                raise ValueError(f"entry {entry_id}: the str is not JSON but its content "
                                 f"type is {content_type}") from None
            item.update(event=value, contentType=content_type)
        else:
            item.update(event=data, contentType=content_type)
    else:
        json.loads(_json_bytes(data))  # fails here, with the entry named, when not JSON
        item.update(event=data, contentType=content_type or JSON)
    if entry.metadata:
        item["metadata"] = {name: str(value) for name, value in entry.metadata.items()}
    return item


def bulk_call(
    pubsub: str,
    topic: str,
    entries: Iterable[PublishEntry | Any],
    *,
    metadata: Mapping[str, str] | None,
    raw_payload: bool,
) -> tuple[Call, dict[str, PublishEntry]]:
    """The request, and the entries by id (to hand failed ones back)."""
    sent: dict[str, PublishEntry] = {}
    items: list[dict[str, Any]] = []
    raw = raw_payload or _raw(metadata)
    for index, given in enumerate(entries):
        entry = given if isinstance(given, PublishEntry) else PublishEntry(given)
        entry_id = entry.entry_id if entry.entry_id is not None else str(index)
        if entry_id in sent:
            raise ValueError(f"entry id {entry_id!r} is used twice")
        sent[entry_id] = entry
        items.append(bulk_entry(entry, entry_id, raw))
    params = metadata_params(metadata)
    if raw_payload:
        params["metadata.rawPayload"] = "true"
    path = f"/v1.0/publish/bulk/{segment(pubsub)}/{_topic(topic)}"
    return Call("POST", path, params, {"Content-Type": JSON}, _json_bytes(items)), sent


def bulk_result(reply: Reply, sent: Mapping[str, PublishEntry]) -> list[FailedEntry]:
    """[] when everything was published; the failed entries when the sidecar lists them
    (Dapr's ``{"failedEntries": [...], "errorCode": ...}``); any other error raises."""
    if reply.ok:
        return []
    try:
        body = reply.json()
    except ValueError:
        body = None
    failed = body.get("failedEntries") if isinstance(body, dict) else None
    if not isinstance(failed, list):
        raise reply.error()
    code = body.get("errorCode") if isinstance(body, dict) else None
    result = []
    for item in failed:
        if not isinstance(item, dict):
            continue
        entry_id = str(item.get("entryId", ""))
        result.append(FailedEntry(entry_id, str(item.get("error", "")),
                                  code if isinstance(code, str) else None, sent.get(entry_id)))
    return result


# --- the methods --------------------------------------------------------------------------
class PubSubMixin(ClientBase):
    """``publish`` and ``publish_bulk`` for both clients."""

    @operation
    def publish(
        self,
        pubsub: str,
        topic: str,
        data: Any,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        partition_key: str | None = None,
        raw_payload: bool = False,
        ttl_seconds: int | None = None,
        deliver_after: timedelta | float | None = None,
        deliver_at: datetime | None = None,
    ) -> Plan[None]:
        """Publish ``data`` to ``topic`` on the ``pubsub`` component; the sidecar wraps it
        in a CloudEvent (unless ``raw_payload``). ``deliver_after`` (a timedelta or seconds)
        or ``deliver_at`` (an aware datetime) delays delivery (docs/delivery.md). Raises
        :class:`TetherApiError`."""
        body, media = encode_body(data, content_type)
        # the keyword arguments win over ``metadata``. The values are passed as they are;
        # the sidecar checks them (a negative delay or a time without an offset is its
        # 400), so the client and curl users get the same answers
        params = metadata_params(metadata)
        if partition_key is not None:
            params["metadata.partitionKey"] = partition_key
        if raw_payload:
            params["metadata.rawPayload"] = "true"
        if ttl_seconds is not None:
            params["metadata.ttlInSeconds"] = str(ttl_seconds)
        if deliver_after is not None:
            params["metadata.deliverAfter"] = _seconds(deliver_after)
        if deliver_at is not None:
            params["metadata.deliverAt"] = deliver_at.isoformat()
        # a topic may hold slashes (the sidecar's route takes the rest of the path)
        path = f"/v1.0/publish/{segment(pubsub)}/{_topic(topic)}"
        yield Call("POST", path, params, {"Content-Type": media}, body)

    @operation
    def publish_bulk(
        self,
        pubsub: str,
        topic: str,
        entries: Iterable[PublishEntry | Any],
        *,
        metadata: Mapping[str, str] | None = None,
        raw_payload: bool = False,
    ) -> Plan[list[FailedEntry]]:
        """Publish several events in one request; returns the entries that failed (empty
        when all were published). A request the sidecar refuses as a whole raises."""
        call, sent = bulk_call(pubsub, topic, entries, metadata=metadata,
                               raw_payload=raw_payload)
        return bulk_result((yield Send(call)), sent)
