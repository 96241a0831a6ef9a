"""The Sender turns a step's actions into outbox records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tether.brokers.memory import MemoryBroker
from tether.platform.events.json_format import from_json
from tether.platform.pubsub.scheduled import unwrap
from tether.platform.state.stores.memory import MemoryStateStore
from tether.platform.workflows.actions import CreateTimer
from tether.platform.workflows.durable.codec import read_orchestration_event
from tether.platform.workflows.durable.names import Names
from tether.platform.workflows.durable.sender import Sender
from tether.platform.workflows.history import TimerFired

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def _timer_event(sender: Sender, fire_at: datetime) -> TimerFired:
    [record] = sender.records_for("i1", [CreateTimer(task_id=3, fire_at=fire_at)], NOW)
    event = from_json(record.event)
    if record.topic == sender.names.timers:
        event = unwrap(event).event
    fired = read_orchestration_event(event).event
    assert isinstance(fired, TimerFired)
    return fired


def test_a_timer_fired_event_carries_the_time_it_fires_not_when_it_was_set() -> None:
    sender = Sender(MemoryBroker("memory://sender-test"), MemoryStateStore(), Names("ns"))
    later = NOW + timedelta(seconds=1.09)
    assert _timer_event(sender, later).timestamp == later
    # a timer already due fires at once: now
    assert _timer_event(sender, NOW - timedelta(seconds=5)).timestamp == NOW
