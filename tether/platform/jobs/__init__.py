"""Dapr's Jobs API on Tether's durable scheduler: job definitions in the app's state store,
each trigger a delayed event on its pub/sub (docs/jobs.md)."""

from tether.platform.jobs.messages import Trigger, jobs_dead_letter_topic, jobs_topic
from tether.platform.jobs.model import DEFAULT_POLICY, FailurePolicy, Job, Timeline, read_request
from tether.platform.jobs.records import JobRecords, Record
from tether.platform.jobs.service import JobsService, jobs_store

__all__ = [
    "DEFAULT_POLICY",
    "FailurePolicy",
    "Job",
    "JobRecords",
    "JobsService",
    "Record",
    "Timeline",
    "Trigger",
    "jobs_dead_letter_topic",
    "jobs_store",
    "jobs_topic",
    "read_request",
]
