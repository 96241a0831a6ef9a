"""Dapr's transactional outbox: a transaction's upserts published with the state or not at all.

A state component turns it on with ``outboxPublishPubsub`` and ``outboxPublishTopic``. Every
upsert of a ``/transaction`` call becomes a CloudEvent (Dapr's envelope,
:mod:`tether.platform.events.envelope`: ``id`` ``outbox-<uuid>``, ``source`` the app id,
``type`` ``com.dapr.event.sent``, ``topic``, ``pubsubname``, the trace ids) stored as an
:class:`OutboxRecord` in the same store transaction as the state; the store's relay
(:mod:`.relay`) publishes it after the commit. An upsert whose metadata has
``outbox.projection: "true"`` is not saved: its value replaces the published payload of the
upsert with the same key.

Dapr coordinates through an internal topic on ``outboxPubsub`` and checks the state before it
publishes (``outboxDiscardWhenMissingState``); Tether keeps the records in the store itself, so
a record exists only when its transaction committed. Both keys are accepted for compatibility
and change nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tether.platform.components import Component
from tether.platform.components.metadata import is_truthy, paired
from tether.platform.errors import ConfigError, TetherError
from tether.platform.events import CloudEvent
from tether.platform.events.envelope import envelope
from tether.platform.events.event import (
    CONTEXT_ATTRIBUTES,
    JSON_CONTENT_TYPE,
    TEXT_CONTENT_TYPE,
    is_json_content_type,
)
from tether.platform.events.ids import new_id, now_text
from tether.platform.events.json_format import event_from_attributes, to_json
from tether.platform.state.store import OutboxRecord

PUBLISH_PUBSUB = "outboxPublishPubsub"
PUBLISH_TOPIC = "outboxPublishTopic"
OUTBOX_PUBSUB = "outboxPubsub"
DISCARD_WHEN_MISSING_STATE = "outboxDiscardWhenMissingState"
PROJECTION = "outbox.projection"
CONTENT_TYPE = "contentType"
#: operation metadata that may shape the event: context attributes Dapr lets it override
_OVERRIDABLE = frozenset(CONTEXT_ATTRIBUTES) - {"specversion", "id"}
_EXTENSION = re.compile(r"^[a-z0-9]{1,20}$")


class OutboxConfigError(ConfigError):
    """Outbox metadata that cannot work (one required key without the other)."""


class ProjectionError(TetherError, ValueError):
    """An ``outbox.projection`` upsert with no upsert of the same key to project."""


@dataclass(frozen=True, slots=True)
class Upsert:
    """One upsert of a transaction, as the outbox needs it."""

    key: str
    #: the stored key (keyPrefix applied): the event's partition key
    stored_key: str
    #: the decoded JSON value the caller sent
    value: Any
    metadata: Mapping[str, str]

    @property
    def is_projection(self) -> bool:
        return is_truthy(self.metadata.get(PROJECTION))


@dataclass(frozen=True, slots=True)
class Outbox:
    """One state component's outbox settings."""

    pubsub: str
    topic: str

    @classmethod
    def from_component(cls, component: Component) -> Outbox | None:
        pair = paired(component, PUBLISH_PUBSUB, PUBLISH_TOPIC, OutboxConfigError,
                      "are both required for the outbox")
        return None if pair is None else cls(*pair)

    def records(
        self, upserts: Sequence[Upsert], *, app_id: str, trace: Mapping[str, str]
    ) -> list[OutboxRecord]:
        """One record per saved upsert, its payload replaced by a projection of the same key.

        Raises ProjectionError for a projection with no saved upsert of its key (Dapr fails
        the whole transaction then).
        """
        projections = {u.key: u for u in upserts if u.is_projection}
        saved = [u for u in upserts if not u.is_projection]
        orphans = set(projections) - {u.key for u in saved}
        if orphans:
            raise ProjectionError(
                f"outbox projection for key(s) {', '.join(sorted(orphans))} has no upsert "
                "of the same key in the transaction"
            )
        return [
            self._record(upsert, projections.get(upsert.key, upsert), app_id, trace)
            for upsert in saved
        ]

    def _record(
        self, upsert: Upsert, payload: Upsert, app_id: str, trace: Mapping[str, str]
    ) -> OutboxRecord:
        record_id = f"outbox-{new_id()}"
        content_type, data = _payload(payload)
        attributes = envelope(
            app_id, record_id, topic=self.topic, pubsub=self.pubsub,
            time=now_text(), partition_key=upsert.stored_key, trace=trace,
        )
        # Dapr copies the operation's metadata into the envelope; names that are not
        # CloudEvents attribute names (ttlInSeconds, contentType, ...) cannot travel there
        for name, value in upsert.metadata.items():
            if name in _OVERRIDABLE or (
                _EXTENSION.match(name) and name not in CONTEXT_ATTRIBUTES
            ):
                attributes[name] = value
        content_type = attributes.pop("datacontenttype", None) or content_type
        event: CloudEvent = event_from_attributes(attributes, data, content_type)
        return OutboxRecord(
            id=record_id, pubsub=self.pubsub, topic=self.topic, event=to_json(event)
        )


def _payload(upsert: Upsert) -> tuple[str, Any]:
    """The event's content type and data for one upsert's value.

    With ``metadata.contentType`` the value is published under that type (a JSON string as
    its text for a non-JSON type); without one a JSON string goes out as ``text/plain`` and
    any other JSON value as ``application/json``.
    """
    value = upsert.value
    declared = upsert.metadata.get(CONTENT_TYPE)
    if declared:
        if is_json_content_type(declared):
            return declared, value
        return declared, value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str):
        return TEXT_CONTENT_TYPE, value
    return JSON_CONTENT_TYPE, value
