"""The state change feed: an ``io.tether.state.changed`` CloudEvent per written key.

A state component opts in with Tether metadata ``changeFeedPubsub`` and ``changeFeedTopic``.
The events are not published by the request handler: they become outbox records written in
the same store transaction as the change (see :mod:`.outbox`), and the store's relay
publishes them. So an acknowledged change always gets its event (at least once) and a change
that failed or was rolled back never does.

An upsert's event carries the item's new ETag: the API chooses it before the transaction
(``SetOperation.new_etag``) and the store writes exactly that one, so the event and a GET
after the change agree. A delete's event has none (the key has no ETag any more).
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.platform.components import Component
from tether.platform.components.metadata import paired
from tether.platform.errors import ConfigError
from tether.platform.events import CloudEvent, utc_now
from tether.platform.events.event import JSON_CONTENT_TYPE
from tether.platform.events.json_format import to_json
from tether.platform.state.store import OutboxRecord

CHANGED_TYPE = "io.tether.state.changed"
FEED_PUBSUB = "changeFeedPubsub"
FEED_TOPIC = "changeFeedTopic"
UPSERT = "upsert"
DELETE = "delete"


class ChangeFeedConfigError(ConfigError):
    """Change feed metadata that cannot work (one key without the other)."""


@dataclass(frozen=True, slots=True)
class ChangeFeed:
    """Where one state component's change events go."""

    store: str
    pubsub: str
    topic: str

    @classmethod
    def from_component(cls, component: Component) -> ChangeFeed | None:
        pair = paired(component, FEED_PUBSUB, FEED_TOPIC, ChangeFeedConfigError,
                      "must be set together")
        return None if pair is None else cls(component.name, *pair)

    def event(
        self,
        *,
        app_id: str,
        key: str,
        stored_key: str,
        operation: str,
        etag: str | None = None,
        transaction: str | None = None,
    ) -> CloudEvent:
        data = {
            "store": self.store,
            "key": key,
            "operation": operation,
            "etag": etag,
            "transaction": transaction,
        }
        return CloudEvent(
            type=CHANGED_TYPE,
            source=app_id,
            subject=key,
            time=utc_now(),
            datacontenttype=JSON_CONTENT_TYPE,
            data=data,
            # per stored key: two apps' keys of the same name are different keys
            extensions={"partitionkey": stored_key},
        )

    def record(self, event: CloudEvent) -> OutboxRecord:
        return OutboxRecord(id=event.id, pubsub=self.pubsub, topic=self.topic, event=to_json(event))
