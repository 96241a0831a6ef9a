"""Virtual actors placed by broker partitions (docs/actors.md): calls routed to the actor
type's topic keyed by actor id, state in the actor state store, durable reminders on the
scheduler, timers on the host. The host side is ``tether.workers.actors``."""

from tether.platform.actors.messages import Reminder, actor_topic
from tether.platform.actors.schedule import Schedule, ScheduleFormatError
from tether.platform.actors.service import ActorService, StateOperation

__all__ = ["ActorService", "Reminder", "Schedule", "ScheduleFormatError", "StateOperation",
           "actor_topic"]
