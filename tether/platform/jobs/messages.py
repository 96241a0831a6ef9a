"""A job's trigger on the broker: which job, which generation of it, which trigger.

A trigger carries no data: the worker reads the job's record when it fires, so a trigger
of a job deleted or overwritten since (another ``generation``) or one already fired
(``trigger`` behind the record's next) is recognised and dropped. Its partition key is the
job's name, so one job's triggers are handled one at a time, in order, across replicas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tether.platform.events import CloudEvent, format_time, parse_time

TRIGGER_TYPE = "io.tether.job.trigger"
TOPIC_PREFIX = "tether.jobs."

# extension names (lower-case letters and digits, as CloudEvents requires)
NAME = "jobname"
GENERATION = "jobgeneration"
TRIGGER = "jobtrigger"
ATTEMPT = "jobattempt"
DUE = "jobdue"


def jobs_topic(app_id: str) -> str:
    """The topic of ``app_id``'s job triggers (consumed in group = app id)."""
    return TOPIC_PREFIX + app_id


def jobs_dead_letter_topic(app_id: str) -> str:
    return jobs_topic(app_id) + ".deadletter"


@dataclass(frozen=True, slots=True)
class Trigger:
    """Trigger number ``trigger`` (0: the first) of generation ``generation`` of job
    ``name``, due at ``due``; ``attempt`` counts the failure policy's retries."""

    name: str
    generation: str
    trigger: int
    due: datetime
    attempt: int = 0

    def to_event(self, app_id: str) -> CloudEvent:
        return CloudEvent(
            type=TRIGGER_TYPE, source=f"{app_id}/jobs/{self.name}",
            extensions={NAME: self.name, GENERATION: self.generation,
                        TRIGGER: str(self.trigger), ATTEMPT: str(self.attempt),
                        DUE: format_time(self.due), "partitionkey": self.name},
        )

    @classmethod
    def from_event(cls, event: CloudEvent) -> Trigger:
        """ValueError when ``event`` is not a trigger."""
        ext = event.extensions
        name, generation = ext.get(NAME), ext.get(GENERATION)
        if event.type != TRIGGER_TYPE or not name or not generation:
            raise ValueError(f"event {event.id} is not a job trigger")
        try:
            return cls(name, generation, int(ext.get(TRIGGER, "")),
                       parse_time(ext.get(DUE, "")), int(ext.get(ATTEMPT, "0")))
        except Exception as exc:
            raise ValueError(f"job trigger {event.id}: {exc}") from None
