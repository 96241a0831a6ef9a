"""The Broker protocol every backend implements, and the errors it raises.

Semantics (the contract suite in tests/brokers checks them on every backend):

* at-least-once: an event is gone from a group only after ``Delivery.ack()``; a crash before
  that redelivers it, to this process or another member of the group;
* a topic has N partitions; an event's ``partitionkey`` picks its partition, so events with
  one key keep their order, and the subscription hands out at most one unsettled delivery
  per key at a time, while different keys are delivered concurrently;
* ``nack(delay)`` redelivers no earlier than ``delay`` seconds later; the key waits behind it
  (its order holds), other keys do not;
* after ``max_deliveries`` deliveries a nack dead-letters the event to ``<topic>.deadletter``
  (or the subscription's named topic); undecodable bytes go there at once;
* members of one group split the partitions; a member that leaves or dies has its
  unacknowledged work redelivered to the others;
* ``close()`` stops fetching, waits for deliveries already handed out to be settled, commits,
  and leaves the group.
"""

from __future__ import annotations

import abc
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar, Literal, Self, get_args

from tether.platform.errors import ConfigError, TetherError
from tether.platform.events import CloudEvent

if TYPE_CHECKING:
    from tether.brokers.subscription import Subscription

DEFAULT_MAX_DELIVERIES = 10
DEFAULT_MAX_IN_FLIGHT = 1000
DEFAULT_PARTITIONS = 4
DEAD_LETTER_SUFFIX = ".deadletter"

#: where a consumer group that has no position yet starts reading a topic
StartFrom = Literal["earliest", "latest"]
START_FROM: tuple[str, ...] = get_args(StartFrom)


class BrokerError(TetherError):
    """Base class of every error a broker raises."""


class BrokerClosedError(BrokerError):
    """The broker (or subscription) was used after close() or before connect()."""


class BrokerUnavailableError(BrokerError):
    """The backend server could not be reached or refused the operation."""


class BrokerConfigError(BrokerError, ConfigError):
    """A broker URL or option that cannot work."""


def dead_letter_topic_for(topic: str) -> str:
    return topic + DEAD_LETTER_SUFFIX


def new_member_id() -> str:
    """A group member's name: host and pid say where it runs (for operators), the random
    part keeps two subscriptions in one process apart."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class SubscribeOptions:
    """How a subscription consumes.

    ``max_in_flight`` bounds the events a member holds between fetch and ack (memory and
    backpressure); ``max_deliveries`` is how many deliveries an event gets before a nack
    dead-letters it.

    ``gate_by_key=False`` hands every fetched record out at once, in fetch order, instead of
    one unsettled record per key: for a consumer that orders a key's records itself and
    wants them together (the workflow runtime drains all pending events of one instance as
    one batch). A nacked or deferred record then comes back after the ones behind it.

    ``start_from`` says where a group that has no position on the topic yet (a NEW group)
    starts: ``"earliest"`` sees every event the topic still holds, ``"latest"`` only those
    published after it joined. It never moves an existing group. None keeps the backend's
    default, which is ``"earliest"`` on every backend but Service Bus (a subscription there
    only sees what is sent after it exists).
    """

    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    dead_letter_topic: str | None = None
    gate_by_key: bool = True
    start_from: StartFrom | None = None

    def __post_init__(self) -> None:
        if self.start_from is not None and self.start_from not in START_FROM:
            raise BrokerConfigError(
                f"start_from {self.start_from!r} must be one of {', '.join(START_FROM)} or None"
            )
        if self.max_in_flight < 1:
            raise BrokerConfigError("max_in_flight must be at least 1")
        if self.max_deliveries < 1:
            raise BrokerConfigError("max_deliveries must be at least 1")

    def dead_letter_topic_of(self, topic: str) -> str:
        return self.dead_letter_topic or dead_letter_topic_for(topic)


class Broker(abc.ABC):
    """An async message broker speaking CloudEvents. Use ``async with`` or connect/close."""

    #: the URL this broker was opened from, with any secret removed
    url: str
    #: whether the backend holds a delayed event itself until it is due
    #: (:meth:`publish_scheduled`); otherwise delayed publish goes through the schedule
    #: topic and the scheduler (tether.platform.pubsub.scheduled)
    schedules_natively: ClassVar[bool] = False

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open connections; raises BrokerUnavailableError when the server is unreachable."""

    @abc.abstractmethod
    async def close(self, drain_timeout: float = 30.0) -> None:
        """Close every subscription (draining in-flight deliveries), then the connections."""

    @abc.abstractmethod
    async def create_topic(self, topic: str, partitions: int = DEFAULT_PARTITIONS) -> None:
        """Create a topic with N partitions; an existing topic is left as it is."""

    @abc.abstractmethod
    async def publish(self, topic: str, event: CloudEvent) -> None:
        """Publish one event; returns once the broker has durably accepted it."""

    @abc.abstractmethod
    async def publish_batch(self, topic: str, events: Sequence[CloudEvent]) -> None:
        """Publish many events; returns once the broker has accepted all of them."""

    async def publish_scheduled(
        self, topic: str, events: Sequence[tuple[CloudEvent, datetime]]
    ) -> None:
        """Publish each event so that it is delivered no earlier than its (aware) time; only
        on a backend that :attr:`schedules_natively`."""
        raise BrokerError(f"{type(self).__name__} cannot hold scheduled events itself")

    async def live_members(self, topic: str, group: str) -> int | None:
        """How many members ``group`` has on ``topic`` right now, or None when this backend
        cannot tell (service invocation uses it to fail a call to an app nobody serves at
        once instead of at its deadline)."""
        return None

    @abc.abstractmethod
    def subscribe(
        self, topic: str, group: str, options: SubscribeOptions | None = None
    ) -> Subscription:
        """A subscription to ``topic`` in consumer ``group``; start it with ``async with``."""

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
