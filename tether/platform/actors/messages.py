"""Actor names on the broker and in the state store, and the bodies Dapr sends the app.

Every call of an actor type travels on ``tether.actors.<type>`` keyed by the actor id, and
the sidecars hosting the type consume it in the group of the same name: the partition of an
id decides its host (placement), and the broker's one-unsettled-record-per-key rule makes
the calls of one id turns, one at a time (docs/actors.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

TOPIC_PREFIX = "tether.actors."
#: the header a reminder's call carries on the broker: ``<name>@<generation>``
REMINDER_HEADER = "tether-actor-reminder"
#: Dapr's header naming the call chain of a reentrant actor's turn: the host sets it on the
#: turn's call to the app, the app's SDK copies it onto the actor calls it makes
REENTRANCY_HEADER = "Dapr-Reentrancy-Id"


def actor_topic(actor_type: str) -> str:
    """The topic of ``actor_type``'s calls (also its hosts' consumer group)."""
    return TOPIC_PREFIX + actor_type


def method_path(actor_type: str, actor_id: str, method: str) -> str:
    """The app path Dapr calls a method on (``PUT``)."""
    return f"/actors/{actor_type}/{actor_id}/method/{method}"


def reminder_path(actor_type: str, actor_id: str, name: str) -> str:
    return f"/actors/{actor_type}/{actor_id}/method/remind/{name}"


def timer_path(actor_type: str, actor_id: str, name: str) -> str:
    return f"/actors/{actor_type}/{actor_id}/method/timer/{name}"


def timers_path(actor_type: str, actor_id: str, name: str) -> str:
    """The path a timer's registration travels to the actor's host under (not the app's)."""
    return f"/tether/actors/{actor_type}/{actor_id}/timers/{name}"


def state_key(app_id: str, actor_type: str, actor_id: str, key: str) -> str:
    """Dapr's key of an actor's state item in the actor state store."""
    return f"{app_id}||{actor_type}||{actor_id}||{key}"


def reminder_key(actor_type: str, actor_id: str, name: str) -> str:
    """Where a reminder's definition is kept in the actor state store."""
    return f"tether-reminders||{actor_type}||{actor_id}||{name}"


@dataclass(frozen=True, slots=True)
class Reminder:
    """A reminder as registered (Dapr's body) and kept: ``generation`` changes on every
    registration, so a fire scheduled by an older one is recognised and skipped."""

    name: str
    due_time: str
    period: str
    ttl: str
    data: Any
    generation: str
    #: fires so far (a period with repetitions stops after its count)
    fired: int = 0

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Reminder:
        value = json.loads(raw)
        return cls(**value)

    def app_body(self) -> bytes:
        """What Dapr sends the app when it fires."""
        return json.dumps({"data": self.data, "dueTime": self.due_time,
                           "period": self.period}).encode()

    def api_body(self) -> dict[str, Any]:
        """What ``GET .../reminders/{name}`` answers."""
        return {"dueTime": self.due_time, "period": self.period, "ttl": self.ttl,
                "data": self.data}
