"""Topics, subscriptions and rules on the namespace: the names Service Bus accepts, and
creating what is missing (with ``manage_entities``) through the administration client."""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.servicebus.management import SqlRuleFilter

from tether.brokers.base import DEAD_LETTER_SUFFIX, BrokerConfigError, SubscribeOptions
from tether.brokers.servicebus.clients import ServiceBusClients
from tether.brokers.servicebus.errors import translated
from tether.brokers.servicebus.retries import DEFAULT_RULE_NAME, RULE_NAME, retry_filter
from tether.brokers.servicebus.settings import ServiceBusSettings

# the package's logger: one name for the whole backend, as before the split into modules
log = logging.getLogger(__name__)

# Service Bus entity names: subscriptions up to 50 characters, topics up to 260
_SUBSCRIPTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,259}$")


def check_topic_name(topic: str) -> None:
    if not _TOPIC_NAME.match(topic):
        raise BrokerConfigError(f"{topic!r} is not a valid Service Bus topic name")


def check_names(topic: str, group: str) -> None:
    check_topic_name(topic)
    if not _SUBSCRIPTION_NAME.match(group):
        raise BrokerConfigError(
            f"group {group!r} cannot name a Service Bus subscription "
            "(letters, digits, '.', '-', '_'; at most 50 characters)"
        )


def _entity_name(value: str | None) -> str:
    """An entity name from a forward-to value, which the service returns as a full URL."""
    if not value:
        return ""
    return urlsplit(value).path.strip("/") if "://" in value else value


class Entities:
    """Makes sure the topics and subscriptions a broker uses exist, once per topic."""

    def __init__(self, clients: ServiceBusClients, settings: ServiceBusSettings) -> None:
        self._clients = clients
        self._settings = settings
        self._topics: set[str] = set()

    async def ensure_topic(self, topic: str) -> None:
        if topic in self._topics or not self._settings.manage_entities:
            return
        check_topic_name(topic)
        admin = self._clients.admin()
        async with translated(f"topic {topic}"):
            try:
                await admin.get_topic(topic)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    await admin.create_topic(topic)
        self._topics.add(topic)

    async def declare_group(self, topic: str, group: str, options: SubscribeOptions) -> bool:
        """Make sure group ``group`` has its subscription on ``topic``; returns whether the
        subscription carries Tether's retry rule (needed for scheduled retries)."""
        # a dead-letter topic's own dead letters stay in the native queue: no endless chain
        # of <topic>.deadletter.deadletter... (and a session-less message, which every
        # session subscription refuses, stays visible instead of being forwarded onward)
        dead_letter_topic = (
            None if topic.endswith(DEAD_LETTER_SUFFIX) else options.dead_letter_topic_of(topic)
        )
        await self.ensure_topic(topic)
        if dead_letter_topic is not None:
            await self.ensure_topic(dead_letter_topic)
        if not self._settings.manage_entities:
            return False  # without Manage rights the rules cannot be read: no scheduled copies
        admin = self._clients.admin()
        async with translated(f"subscription {topic}/{group}"):
            try:
                existing = await admin.get_subscription(topic, group)
            except ResourceNotFoundError:
                existing = None
            if existing is None:
                await self._create_subscription(topic, group, options, dead_letter_topic)
                return True
            self._check_existing(topic, group, existing, dead_letter_topic)
            try:
                await admin.get_rule(topic, group, RULE_NAME)
            except ResourceNotFoundError:
                log.info("%s/%s was not created by Tether (no %r rule): keyless retries are "
                         "held in memory instead of scheduled", topic, group, RULE_NAME)
                return False
            return True

    async def _create_subscription(
        self, topic: str, group: str, options: SubscribeOptions, dead_letter_topic: str | None
    ) -> None:
        admin = self._clients.admin()
        try:
            await admin.create_subscription(
                topic,
                group,
                requires_session=self._settings.sessions,
                max_delivery_count=self._settings.max_delivery_count or options.max_deliveries,
                forward_dead_lettered_messages_to=dead_letter_topic,
            )
        except ResourceExistsError:
            pass  # another member created it a moment ago; it adds the same rule
        with contextlib.suppress(ResourceExistsError):
            await admin.create_rule(
                topic, group, RULE_NAME, filter=SqlRuleFilter(retry_filter(topic, group))
            )
        with contextlib.suppress(ResourceNotFoundError):
            await admin.delete_rule(topic, group, DEFAULT_RULE_NAME)

    def _check_existing(
        self, topic: str, group: str, existing: Any, dead_letter_topic: str | None
    ) -> None:
        if bool(existing.requires_session) != self._settings.sessions:
            raise BrokerConfigError(
                f"subscription {topic}/{group} has requires_session="
                f"{bool(existing.requires_session)} but the broker URL says "
                f"sessions={str(self._settings.sessions).lower()}; Service Bus cannot change it"
            )
        target = _entity_name(existing.forward_dead_lettered_messages_to)
        if target.lower() != (dead_letter_topic or "").lower():
            log.warning("%s/%s forwards dead letters to %r, not %r: they go there",
                        topic, group, target or None, dead_letter_topic)
