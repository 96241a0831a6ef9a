"""The entries of a bulk publish: Dapr's bulk body read and checked, and ids for them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tether.platform import errors
from tether.platform.errors import ApiError
from tether.platform.events.event import is_json_content_type
from tether.platform.json_body import JsonBodyError, read_json


class _Unparsed:
    """No parsed JSON value is at hand: read the body."""


UNPARSED = _Unparsed()


@dataclass(frozen=True, slots=True)
class BulkEntry:
    """One entry of a bulk publish."""

    entry_id: str
    #: the entry's ``event`` member as parsed from the request
    event: Any
    content_type: str
    metadata: Mapping[str, str]

    @property
    def body(self) -> bytes:
        """The event as the body of a single publish would carry it."""
        return _event_bytes(self.event, self.content_type)

    @property
    def parsed(self) -> Any:
        """The JSON value a JSON content type's body decodes to, already at hand."""
        return self.event if is_json_content_type(self.content_type) else UNPARSED


def parse_bulk(body: bytes) -> list[BulkEntry]:
    """Dapr's bulk body: ``[{entryId, event, contentType, metadata?}]``; entry ids are
    required and unique (Dapr answers 400 ERR_PUBSUB_EVENTS_SER otherwise)."""
    try:
        items = read_json(body, list)
    except JsonBodyError as exc:
        raise _bulk_error(str(exc)) from exc
    entries: list[BulkEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bulk_error(f"entry {index} is not an object")
        entry_id = item.get("entryId")
        if not isinstance(entry_id, str) or not entry_id or entry_id in seen:
            raise _bulk_error(f"entry {index}: entryId is duplicated or not present")
        seen.add(entry_id)
        content_type = item.get("contentType")
        if not isinstance(content_type, str) or not content_type:
            raise _bulk_error(f"entry {entry_id}: contentType is required")
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(v, str) for v in metadata.values()
        ):
            raise _bulk_error(f"entry {entry_id}: metadata must map names to strings")
        if "event" not in item:
            raise _bulk_error(f"entry {entry_id}: event is required")
        entries.append(BulkEntry(entry_id, item["event"], content_type, metadata))
    return entries


def _event_bytes(event: Any, content_type: str) -> bytes:
    # a JSON content type carries the event as a JSON value; otherwise a string is the body
    if isinstance(event, str) and not is_json_content_type(content_type):
        return event.encode()
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def _bulk_error(problem: str) -> ApiError:
    message = f"error when unmarshaling the request: {problem}"
    return ApiError(400, errors.PUBSUB_EVENTS_SER, message)
