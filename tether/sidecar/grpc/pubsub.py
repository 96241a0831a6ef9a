"""PublishEvent and BulkPublishEvent(Alpha1) over the pub/sub block's Publisher.

The same Publisher as ``POST /v1.0/publish`` (Dapr's checks, envelope, topic scopes,
resiliency). A bulk entry's ``event`` bytes are read the way the HTTP bulk body gives them:
JSON for a JSON content type, text otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

from dapr.proto.runtime.v1 import pubsub_pb2

from tether.platform import errors
from tether.platform.errors import ApiError
from tether.platform.events.event import is_json_content_type
from tether.platform.json_body import JsonBodyError, read_json
from tether.platform.pubsub import BulkEntry, Publisher

#: the content type of a bulk entry that names none (as a single publish without one)
DEFAULT_CONTENT_TYPE = "text/plain"


def _entries(request: pubsub_pb2.BulkPublishRequest) -> list[BulkEntry]:
    """The request's entries, checked as the HTTP bulk body is (ids required and unique)."""
    entries: list[BulkEntry] = []
    seen: set[str] = set()
    for index, raw in enumerate(request.entries):
        if not raw.entry_id or raw.entry_id in seen:
            raise _bulk_error(f"entry {index}: entryId is duplicated or not present")
        seen.add(raw.entry_id)
        content_type = raw.content_type or DEFAULT_CONTENT_TYPE
        try:
            event = (read_json(raw.event) if is_json_content_type(content_type)
                     else raw.event.decode())
        except (JsonBodyError, UnicodeDecodeError) as exc:
            raise _bulk_error(f"entry {raw.entry_id}: {exc}") from None
        entries.append(BulkEntry(raw.entry_id, event, content_type, dict(raw.metadata)))
    return entries


def _bulk_error(problem: str) -> ApiError:
    return ApiError(400, errors.PUBSUB_EVENTS_SER, f"error when reading the bulk request: "
                                                   f"{problem}")


class PubSubRpc:
    """The publish RPCs of one sidecar."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher

    async def publish(
        self, request: pubsub_pb2.PublishEventRequest, trace: Mapping[str, str]
    ) -> None:
        target = self.publisher.resolve(request.pubsub_name, request.topic)
        await self.publisher.publish(target, request.data, request.data_content_type or None,
                                     dict(request.metadata), trace)

    async def publish_bulk(
        self, request: pubsub_pb2.BulkPublishRequest, trace: Mapping[str, str]
    ) -> pubsub_pb2.BulkPublishResponse:
        """Every entry published, or each one listed as failed with the broker's error."""
        target = self.publisher.resolve(request.pubsub_name, request.topic)
        failure = await self.publisher.publish_bulk(
            target, _entries(request), dict(request.metadata), trace
        )
        if failure is None:
            return pubsub_pb2.BulkPublishResponse()
        return pubsub_pb2.BulkPublishResponse(failedEntries=[
            pubsub_pb2.BulkPublishResponseFailedEntry(entry_id=entry_id,
                                                      error=failure.error.message)
            for entry_id in failure.entry_ids
        ])
