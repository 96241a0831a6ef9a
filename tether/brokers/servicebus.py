"""``servicebus://``: Azure Service Bus topics and subscriptions (azure-servicebus, aio).

Mapping (docs/brokers-servicebus.md has the reasoning and the trade-offs):

* a Tether topic is a Service Bus topic; a consumer group is a subscription named after the
  group, created on first use with ``requires_session`` (when ``sessions=true``),
  ``max_delivery_count`` and ``forward_dead_lettered_messages_to=<dead-letter topic>``;
* ``partitionkey`` is the message's ``session_id``; a session receiver owns a session, so a
  key is handled by one member at a time, in order. Keyless events get a round-robin
  session id from a small fixed set, so they can reach session-enabled subscriptions too;
* receivers use PEEK_LOCK with an AutoLockRenewer; ack completes the message;
* ``nack`` keeps a keyed delivery locked and redelivers it from memory after the delay (so
  the key keeps its order); a keyless delivery is abandoned (delay 0) or re-sent as a copy
  scheduled for now + delay, addressed to this group only, and the original is completed;
* dead letters are native (``dead_letter_message`` with the reason); Service Bus forwards the
  subscription's dead-letter queue to the dead-letter topic, where the reason, the origin
  and the count come back as the ``deadletter*`` extensions.

Every SDK call goes through the small :class:`ServiceBusClients` seam, so tests can run the
adapter over an in-memory fake (no Service Bus server or emulator runs on our machines).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.servicebus import (
    NEXT_AVAILABLE_SESSION,
    ServiceBusMessage,
    ServiceBusMessageBatch,
    ServiceBusReceivedMessage,
)
from azure.servicebus.aio import AutoLockRenewer, ServiceBusClient
from azure.servicebus.exceptions import (
    MessageAlreadySettled,
    MessageSizeExceededError,
    MessagingEntityNotFoundError,
    OperationTimeoutError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusCommunicationError,
    ServiceBusConnectionError,
    ServiceBusError,
    ServiceBusServerBusyError,
)
from azure.servicebus.management import ServiceBusAdministrationClient, SqlRuleFilter

from tether.brokers.base import (
    DEAD_LETTER_SUFFIX,
    DEFAULT_PARTITIONS,
    Broker,
    BrokerClosedError,
    BrokerConfigError,
    BrokerError,
    BrokerUnavailableError,
    SubscribeOptions,
)
from tether.brokers.subscription import MALFORMED_EVENT_TYPE, Record, Subscription
from tether.platform.events import CloudEvent, InvalidCloudEventError, utc_now
from tether.platform.events.servicebus import (
    body_bytes,
    from_servicebus,
    text_properties,
    to_servicebus,
)

log = logging.getLogger(__name__)

DEFAULT_CONNECTION_STRING_ENV = "TETHER_SERVICEBUS_CONNECTION_STRING"
#: keyless events are spread over this many session ids (``tether-keyless-<n>``)
KEYLESS_SESSIONS = 16
#: messages asked for per receive call (also bounded by the room under max_in_flight)
RECEIVE_BATCH = 32
#: how long an idle session worker waits for a session to accept before asking again
ACCEPT_WAIT = 30.0
#: a failed receiver is reopened after this pause
RETRY_PAUSE = 1.0

#: the rule Tether installs on the subscriptions it creates (see retry_filter)
RULE_NAME = "tether"
DEFAULT_RULE_NAME = "$Default"
#: application properties of a scheduled retry copy
RETRY_TOPIC_PROPERTY = "tether_retry_topic"
RETRY_GROUP_PROPERTY = "tether_retry_group"
#: deliveries an event had before this copy of it was scheduled
DELIVERIES_PROPERTY = "tether_deliveries"

# Service Bus entity names: subscriptions up to 50 characters, topics up to 260
_SUBSCRIPTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")
_TOPIC_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,259}$")
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def retry_filter(topic: str, group: str) -> str:
    """The SQL filter of group ``group`` on ``topic``: every message except the retry copies
    other groups of this topic scheduled for themselves. Messages forwarded here from another
    topic's dead-letter queue carry that topic's name, so they pass."""
    return (
        f"NOT EXISTS({RETRY_TOPIC_PROPERTY}) OR {RETRY_TOPIC_PROPERTY} <> '{topic}'"
        f" OR {RETRY_GROUP_PROPERTY} = '{group}'"
    )


# --- settings and URL -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServiceBusSettings:
    """Options from the URL query (docs/brokers-servicebus.md)."""

    #: subscriptions require sessions: per-key order and one handler per key across members
    sessions: bool = True
    #: the subscriptions' native MaxDeliveryCount; None: SubscribeOptions.max_deliveries
    max_delivery_count: int | None = None
    #: sessions one subscription member works on at once
    max_sessions: int = 8
    #: a session with nothing new for this long (and nothing unsettled) is released
    idle_timeout: float = 1.0
    #: create missing topics, subscriptions and rules (needs a Manage claim)
    manage_entities: bool = True
    #: how long AutoLockRenewer keeps a message or session lock alive
    lock_renewal: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_delivery_count is not None and self.max_delivery_count < 1:
            raise BrokerConfigError("max_delivery_count must be at least 1")
        if self.max_sessions < 1:
            raise BrokerConfigError("max_sessions must be at least 1")
        if self.idle_timeout <= 0 or self.lock_renewal <= 0:
            raise BrokerConfigError("idle_timeout and lock_renewal must be positive")


_OPTIONS: dict[str, Callable[[str, str], Any]] = {
    "sessions": lambda n, v: _parse_bool(n, v),
    "max_delivery_count": lambda n, v: _parse_number(n, v, int),
    "max_sessions": lambda n, v: _parse_number(n, v, int),
    "idle_timeout": lambda n, v: _parse_number(n, v, float),
    "manage_entities": lambda n, v: _parse_bool(n, v),
    "lock_renewal": lambda n, v: _parse_number(n, v, float),
}


def _parse_bool(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise BrokerConfigError(f"servicebus:// option {name} must be true or false")


def _parse_number(name: str, value: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(value)
    except ValueError:
        raise BrokerConfigError(f"servicebus:// option {name} must be a number") from None


def connection_string_endpoint(connection_string: str) -> str:
    """The namespace host named by a connection string's ``Endpoint=sb://HOST/``."""
    for part in connection_string.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "endpoint":
            host = urlsplit(value.strip()).hostname
            if host:
                return host
    raise BrokerConfigError("the Service Bus connection string has no Endpoint=sb://HOST/")


def from_url(url: str) -> ServiceBusBroker:
    """``servicebus://[NAMESPACE.servicebus.windows.net][?connection_string_env=VAR&...]``.

    The connection string is read from the environment (TETHER_SERVICEBUS_CONNECTION_STRING
    unless ``connection_string_env`` names another variable) and never appears in the URL.
    """
    parts = urlsplit(url)
    if parts.path.strip("/") or parts.username or parts.password:
        raise BrokerConfigError(
            "servicebus:// takes a namespace host and options only; the connection string "
            f"comes from the environment ({DEFAULT_CONNECTION_STRING_ENV})"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    env = query.pop("connection_string_env", DEFAULT_CONNECTION_STRING_ENV)
    unknown = sorted(set(query) - set(_OPTIONS))
    if unknown:  # names only: a value might be a secret pasted in the wrong place
        raise BrokerConfigError(
            f"unknown servicebus:// option(s) {', '.join(unknown)}; "
            f"known: connection_string_env, {', '.join(_OPTIONS)}"
        )
    settings = ServiceBusSettings(**{name: _OPTIONS[name](name, v) for name, v in query.items()})
    connection_string = os.environ.get(env, "").strip()
    if not connection_string:
        raise BrokerConfigError(
            f"servicebus:// needs a connection string in the environment variable {env}"
        )
    host = connection_string_endpoint(connection_string)
    if parts.hostname and parts.hostname.lower() != host.lower():
        raise BrokerConfigError(
            f"servicebus://{parts.hostname} does not match the namespace {host} of {env}"
        )
    clean = urlencode({"connection_string_env": env, **query})
    return ServiceBusBroker(
        AzureServiceBusClients(connection_string, settings.lock_renewal),
        f"servicebus://{host}?{clean}",
        settings,
    )


# --- the seam: the few SDK calls the adapter makes --------------------------------------------
class Receiver(Protocol):
    """A subscription receiver in PEEK_LOCK mode (plain, or holding one session)."""

    async def receive_messages(
        self, max_message_count: int | None = ..., max_wait_time: float | None = ...
    ) -> list[ServiceBusReceivedMessage]: ...

    async def complete_message(self, message: ServiceBusReceivedMessage) -> None: ...

    async def abandon_message(self, message: ServiceBusReceivedMessage) -> None: ...

    async def dead_letter_message(
        self,
        message: ServiceBusReceivedMessage,
        reason: str | None = ...,
        error_description: str | None = ...,
    ) -> None: ...

    async def close(self) -> None: ...


class Sender(Protocol):
    async def send_messages(self, message: ServiceBusMessage | ServiceBusMessageBatch) -> None: ...

    async def schedule_messages(
        self, messages: ServiceBusMessage, schedule_time_utc: datetime
    ) -> list[int]: ...

    async def create_message_batch(self) -> ServiceBusMessageBatch: ...

    async def close(self) -> None: ...


class Admin(Protocol):
    """The ServiceBusAdministrationClient calls used to create entities."""

    async def get_namespace_properties(self) -> Any: ...

    async def get_topic(self, topic_name: str) -> Any: ...

    async def create_topic(self, topic_name: str) -> Any: ...

    async def get_subscription(self, topic_name: str, subscription_name: str) -> Any: ...

    async def create_subscription(
        self,
        topic_name: str,
        subscription_name: str,
        *,
        requires_session: bool,
        max_delivery_count: int,
        forward_dead_lettered_messages_to: str | None,
    ) -> Any: ...

    async def get_rule(self, topic_name: str, subscription_name: str, rule_name: str) -> Any: ...

    async def create_rule(
        self, topic_name: str, subscription_name: str, rule_name: str, *, filter: SqlRuleFilter
    ) -> Any: ...

    async def delete_rule(
        self, topic_name: str, subscription_name: str, rule_name: str
    ) -> None: ...

    async def close(self) -> None: ...


class ServiceBusClients(Protocol):
    """Where the adapter gets its SDK objects; tests pass a fake."""

    async def open(self) -> None: ...

    def admin(self) -> Admin: ...

    def sender(self, topic: str) -> Sender: ...

    async def open_receiver(
        self, topic: str, subscription: str, *, session: bool, max_wait_time: float
    ) -> Receiver:
        """An open receiver; with ``session`` it has accepted the next available session,
        or raised OperationTimeoutError when none came within ``max_wait_time``."""
        ...

    async def close(self) -> None: ...


class AzureServiceBusClients:
    """The real seam: azure-servicebus aio clients built from a connection string."""

    def __init__(self, connection_string: str, lock_renewal: float) -> None:
        self._connection_string = connection_string
        self._lock_renewal = lock_renewal
        self._client: ServiceBusClient | None = None
        self._admin: _ThreadedAdmin | None = None
        self._renewer: AutoLockRenewer | None = None

    async def open(self) -> None:
        self._client = ServiceBusClient.from_connection_string(self._connection_string)
        self._admin = _ThreadedAdmin(
            ServiceBusAdministrationClient.from_connection_string(self._connection_string)
        )
        self._renewer = AutoLockRenewer(
            max_lock_renewal_duration=self._lock_renewal, on_lock_renew_failure=_lock_lost
        )

    def admin(self) -> Admin:
        assert self._admin is not None, "open() first"
        return self._admin

    def sender(self, topic: str) -> Sender:
        assert self._client is not None, "open() first"
        return self._client.get_topic_sender(topic_name=topic)

    async def open_receiver(
        self, topic: str, subscription: str, *, session: bool, max_wait_time: float
    ) -> Receiver:
        assert self._client is not None, "open() first"
        receiver = self._client.get_subscription_receiver(
            topic,
            subscription,
            session_id=NEXT_AVAILABLE_SESSION if session else None,
            max_wait_time=max_wait_time,
            auto_lock_renewer=self._renewer,  # renews message locks, or the session lock
            prefetch_count=0,  # hold no locked message the adapter does not know about
        )
        try:
            await receiver.__aenter__()  # attaches the link (and accepts a session)
        except BaseException:
            with contextlib.suppress(Exception):
                await receiver.close()
            raise
        return receiver

    async def close(self) -> None:
        for closer in (self._renewer, self._client, self._admin):
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer.close()
        self._client = self._admin = self._renewer = None


class _ThreadedAdmin:
    """The synchronous administration client, called in a worker thread.

    The aio administration client needs aiohttp, which azure-servicebus does not install;
    entity management is rare (a topic or subscription on first use), so a thread is cheap.
    """

    def __init__(self, client: ServiceBusAdministrationClient) -> None:
        self._client = client

    async def get_namespace_properties(self) -> Any:
        return await asyncio.to_thread(self._client.get_namespace_properties)

    async def get_topic(self, topic_name: str) -> Any:
        return await asyncio.to_thread(self._client.get_topic, topic_name)

    async def create_topic(self, topic_name: str) -> Any:
        return await asyncio.to_thread(self._client.create_topic, topic_name)

    async def get_subscription(self, topic_name: str, subscription_name: str) -> Any:
        return await asyncio.to_thread(
            self._client.get_subscription, topic_name, subscription_name
        )

    async def create_subscription(
        self,
        topic_name: str,
        subscription_name: str,
        *,
        requires_session: bool,
        max_delivery_count: int,
        forward_dead_lettered_messages_to: str | None,
    ) -> Any:
        return await asyncio.to_thread(
            self._client.create_subscription,
            topic_name,
            subscription_name,
            requires_session=requires_session,
            max_delivery_count=max_delivery_count,
            forward_dead_lettered_messages_to=forward_dead_lettered_messages_to,
        )

    async def get_rule(self, topic_name: str, subscription_name: str, rule_name: str) -> Any:
        return await asyncio.to_thread(
            self._client.get_rule, topic_name, subscription_name, rule_name
        )

    async def create_rule(
        self, topic_name: str, subscription_name: str, rule_name: str, *, filter: SqlRuleFilter
    ) -> Any:
        return await asyncio.to_thread(
            self._client.create_rule, topic_name, subscription_name, rule_name, filter=filter
        )

    async def delete_rule(self, topic_name: str, subscription_name: str, rule_name: str) -> None:
        await asyncio.to_thread(self._client.delete_rule, topic_name, subscription_name, rule_name)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)


async def _lock_lost(renewable: Any, error: Exception | None) -> None:
    log.warning("Service Bus lock renewal stopped for %r: %s; it will be redelivered",
                renewable, error)


# --- errors -----------------------------------------------------------------------------------
_UNAVAILABLE = (
    ServiceBusConnectionError,
    ServiceBusCommunicationError,
    ServiceBusAuthenticationError,
    ServiceBusAuthorizationError,
    ServiceBusServerBusyError,
    OperationTimeoutError,
    ServiceRequestError,
    ServiceResponseError,
    ClientAuthenticationError,
)


@contextlib.asynccontextmanager
async def _translated(what: str) -> AsyncIterator[None]:
    """SDK errors as BrokerErrors (the original stays chained)."""
    try:
        yield
    except BrokerError:
        raise
    except MessagingEntityNotFoundError as exc:
        raise BrokerConfigError(
            f"{what}: entity not found (manage_entities=false?): {exc}"
        ) from exc
    except _UNAVAILABLE as exc:
        raise BrokerUnavailableError(f"{what}: Service Bus unreachable or refused: {exc}") from exc
    except (AzureError, MessageSizeExceededError) as exc:
        raise BrokerError(f"{what}: {exc}") from exc


# --- reading messages ---------------------------------------------------------------------------
def record_from(message: ServiceBusReceivedMessage) -> Record:
    """A Record for a received message. The delivery count adds the deliveries of earlier
    copies (scheduled retries) to Service Bus's own count, which starts at 0 on the wire."""
    properties = text_properties(message)
    prior = _int(properties.get(DELIVERIES_PROPERTY))
    count = prior + (message.delivery_count or 0) + 1
    position = message.sequence_number
    try:
        event: CloudEvent = from_servicebus(message)
    except InvalidCloudEventError as exc:
        if message.dead_letter_reason is None:
            return Record(0, position, None, None, count, raw=_raw(message), error=str(exc))
        event = _malformed_corpse(message)  # dead-lettered bytes, shown as Tether shows them
    if message.dead_letter_reason is not None:
        event = _with_dead_letter_info(event, message)
    return Record(0, position, event.partitionkey, event, count)


def _dead_letter_details(message: ServiceBusReceivedMessage) -> dict[str, Any]:
    """What Tether wrote into the error description, or what the source entity tells."""
    details: dict[str, Any] = {}
    with contextlib.suppress(ValueError, TypeError):
        parsed = json.loads(message.dead_letter_error_description or "")
        if isinstance(parsed, dict):
            details = parsed
    source = message.dead_letter_source or ""  # "<topic>/Subscriptions/<group>"
    pieces = re.split(r"/subscriptions/", source, maxsplit=1, flags=re.IGNORECASE)
    details.setdefault("topic", pieces[0] or None)
    details.setdefault("group", pieces[1].split("/")[0] if len(pieces) > 1 else None)
    return details


def _with_dead_letter_info(event: CloudEvent, message: ServiceBusReceivedMessage) -> CloudEvent:
    details = _dead_letter_details(message)
    extensions: dict[str, Any] = {"deadletterreason": message.dead_letter_reason}
    if details.get("topic"):
        extensions["deadlettertopic"] = str(details["topic"])
    if isinstance(details.get("deliveries"), int):
        extensions["deadletterdeliveries"] = details["deliveries"]
    return event.with_extensions(**extensions)


def _malformed_corpse(message: ServiceBusReceivedMessage) -> CloudEvent:
    details = _dead_letter_details(message)
    return CloudEvent(
        type=MALFORMED_EVENT_TYPE,
        source=f"tether/broker/{details.get('group') or 'servicebus'}",
        time=message.enqueued_time_utc or utc_now(),
        data=_raw(message) or b"",
        datacontenttype="application/octet-stream",
    )


def _raw(message: ServiceBusReceivedMessage) -> bytes | None:
    try:
        return body_bytes(message)
    except InvalidCloudEventError:
        return str(message.body).encode()


def _int(value: Any) -> int:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


# --- subscription -------------------------------------------------------------------------------
@dataclass(eq=False)
class _Link:
    """One open receiver (a session, or the subscription's plain queue) and the records
    fetched through it that are not yet disposed of on the server."""

    receiver: Receiver
    held: set[Record] = field(default_factory=set)


class ServiceBusSubscription(Subscription):
    """Session (or plain) receivers feeding the shared engine; see the module docstring.

    Overrides of the base class: ``_dead_letter`` and ``_dead_letter_malformed`` use the
    native dead-letter queue instead of publishing; ``_nack`` hands keyless retries back to
    Service Bus (abandon, or a scheduled copy) instead of holding them in memory.
    """

    def __init__(
        self, broker: ServiceBusBroker, topic: str, group: str, options: SubscribeOptions | None
    ) -> None:
        super().__init__(topic, group, options)
        self._broker = broker
        self._settings = broker.settings
        self._messages: dict[Record, tuple[_Link, ServiceBusReceivedMessage]] = {}
        self._links: set[_Link] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._can_schedule = False

    # --- Subscription hooks -------------------------------------------------------------------
    async def _start(self) -> None:
        self._can_schedule = await self._broker.declare_group(self.topic, self.group, self.options)
        count = self._settings.max_sessions if self._settings.sessions else 1
        self._workers = [
            asyncio.create_task(self._work(), name=f"servicebus:{self.topic}/{self.group}:{n}")
            for n in range(count)
        ]

    async def _stop_fetching(self) -> None:
        self._stop.set()
        self._room.set()  # wake a worker waiting for room under max_in_flight
        # workers finish their current receive (at most idle_timeout) and leave links open
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _finish(self) -> None:
        # what was fetched and not settled goes back at once, rather than at lock expiry
        for record in list(self._messages):
            await self._dispose(record, "abandon")
        for link in list(self._links):
            await self._close_link(link)

    async def _on_settled(self, record: Record) -> None:
        await self._dispose(record, "complete")

    async def _publish_dead_letter(self, topic: str, event: CloudEvent) -> None:
        raise NotImplementedError("Service Bus dead letters are native: see _dead_letter")

    # --- settling overrides -----------------------------------------------------------------
    async def _dead_letter(self, record: Record, reason: str) -> None:
        if not self._settle(record):
            return
        await self._dispose(record, "dead-letter", reason, self._details(record))

    async def _dead_letter_malformed(self, record: Record) -> None:
        log.warning("dead-lettering undecodable message on %s/%s #%s: %s",
                    self.topic, self.group, record.position, record.error)
        record.settled = True
        details = self._details(record, malformed=True)
        await self._dispose(record, "dead-letter", record.error or "undecodable message", details)

    async def _nack(self, record: Record, delay: float) -> None:
        keep_in_memory = (
            record.key is not None  # the key's order: later events of it wait in memory
            or (delay > 0 and not self._can_schedule)
            or record.settled
            or record in self._timers
            or record not in self._unsettled
            or record.delivery_count >= self.options.max_deliveries  # the base dead-letters
        )
        if keep_in_memory:
            await super()._nack(record, delay)
            return
        self._settle(record)
        if delay <= 0:
            await self._dispose(record, "abandon")
            return
        if await self._schedule_copy(record, delay):
            await self._dispose(record, "complete")
        else:  # could not schedule: give it back now (redelivered without the delay)
            await self._dispose(record, "abandon")

    def _details(self, record: Record, *, malformed: bool = False) -> str:
        details: dict[str, Any] = {"topic": self.topic, "group": self.group,
                                   "deliveries": record.delivery_count}
        if malformed:
            details["malformed"] = True
        return json.dumps(details, separators=(",", ":"))

    async def _schedule_copy(self, record: Record, delay: float) -> bool:
        assert record.event is not None
        entry = self._messages.get(record)
        session_id = entry[1].session_id if entry else None
        copy = to_servicebus(record.event, session_id=session_id)
        copy.message_id = f"{record.event.id}:retry:{record.delivery_count}"
        copy.application_properties = {
            **(copy.application_properties or {}),
            RETRY_TOPIC_PROPERTY: self.topic,
            RETRY_GROUP_PROPERTY: self.group,
            DELIVERIES_PROPERTY: record.delivery_count,
        }
        when = datetime.now(UTC) + timedelta(seconds=delay)
        try:
            await self._broker.sender_for(self.topic).schedule_messages(copy, when)
        except (ServiceBusError, AzureError) as exc:
            log.warning("%s/%s: could not schedule a retry of %s: %s",
                        self.topic, self.group, record.event.id, exc)
            return False
        return True

    async def _dispose(self, record: Record, action: str, reason: str = "",
                       description: str = "") -> None:
        """Settle ``record``'s message on the server; failures mean Service Bus redelivers
        it later (at-least-once), so they are logged, not raised at the consumer."""
        entry = self._messages.pop(record, None)
        if entry is None:
            return
        link, message = entry
        link.held.discard(record)
        receiver = link.receiver
        try:
            if action == "complete":
                await receiver.complete_message(message)
            elif action == "abandon":
                await receiver.abandon_message(message)
            else:
                await receiver.dead_letter_message(
                    message, reason=reason[:4096], error_description=description
                )
        except (ServiceBusError, MessageAlreadySettled, AzureError) as exc:
            log.warning("%s/%s: could not %s message #%s: %s; Service Bus will redeliver it",
                        self.topic, self.group, action, record.position, exc)

    # --- fetching ---------------------------------------------------------------------------
    async def _work(self) -> None:
        while not self._stop.is_set():
            link = await self._open_link()
            if link is None:
                continue
            try:
                await self._fetch(link)
            except Exception:  # a worker must outlive one bad receiver; log and reopen
                log.exception("%s/%s: receiver failed; reopening", self.topic, self.group)
                await self._close_link(link)
                await self._pause(RETRY_PAUSE)
                continue
            if not self._stop.is_set():
                await self._close_link(link)  # a drained session: let any member take it

    async def _open_link(self) -> _Link | None:
        """Open a receiver (accepting a session), unless stop comes first."""
        sessions = self._settings.sessions
        opening = asyncio.ensure_future(self._broker.clients.open_receiver(
            self.topic, self.group, session=sessions,
            max_wait_time=ACCEPT_WAIT if sessions else self._settings.idle_timeout,
        ))
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({opening, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not opening.done():
            opening.cancel()
            opening.add_done_callback(_close_if_opened)
            return None
        try:
            receiver = opening.result()
        except OperationTimeoutError:
            return None  # no session has messages right now
        except (ServiceBusError, AzureError) as exc:
            log.warning("%s/%s: cannot open a receiver: %s", self.topic, self.group, exc)
            await self._pause(RETRY_PAUSE)
            return None
        link = _Link(receiver)
        self._links.add(link)
        if self._stop.is_set():
            await self._close_link(link)
            return None
        return link

    async def _fetch(self, link: _Link) -> None:
        """Receive into the engine until stopped, or (sessions) until the session is drained
        and everything fetched from it is settled."""
        idle = self._settings.idle_timeout
        while not self._stop.is_set():
            await self._wait_for_room()
            room = self.options.max_in_flight - self.in_flight
            messages = await link.receiver.receive_messages(
                max_message_count=max(1, min(RECEIVE_BATCH, room)), max_wait_time=idle
            )
            if self._stop.is_set():
                for message in messages:
                    with contextlib.suppress(ServiceBusError, MessageAlreadySettled, AzureError):
                        await link.receiver.abandon_message(message)
                return
            if not messages:
                if self._settings.sessions and not link.held:
                    return
                continue
            for message in messages:
                record = record_from(message)
                self._messages[record] = (link, message)
                link.held.add(record)
                await self._put(record)
                if not record.settled and record not in self._unsettled:
                    await self._dispose(record, "abandon")  # dropped by a close meanwhile

    async def _wait_for_room(self) -> None:
        while self.in_flight >= self.options.max_in_flight and not self._stop.is_set():
            self._room.clear()
            await self._room.wait()

    async def _close_link(self, link: _Link) -> None:
        self._links.discard(link)
        with contextlib.suppress(Exception):  # closing must not fail the caller
            await link.receiver.close()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)


_closing: set[asyncio.Future[None]] = set()  # keeps late closes alive until they finish


def _close_if_opened(task: asyncio.Future[Receiver]) -> None:
    """A receiver that finished opening after we stopped waiting for it: close it."""
    if task.cancelled() or task.exception() is not None:
        return
    closing = asyncio.ensure_future(task.result().close())
    _closing.add(closing)
    closing.add_done_callback(_closing.discard)


# --- broker -------------------------------------------------------------------------------------
class ServiceBusBroker(Broker):
    def __init__(
        self, clients: ServiceBusClients, url: str, settings: ServiceBusSettings | None = None
    ) -> None:
        self.clients = clients
        self.url = url
        self.settings = settings or ServiceBusSettings()
        self._senders: dict[str, Sender] = {}
        self._topics: set[str] = set()
        self._subscriptions: list[ServiceBusSubscription] = []
        self._keyless = itertools.count()
        self._connected = False

    async def connect(self) -> None:
        if self._connected:
            return
        try:
            async with _translated("connect"):
                await self.clients.open()
                if self.settings.manage_entities:  # a cheap call that proves reach and rights
                    await self.clients.admin().get_namespace_properties()
        except BrokerError:
            await self.clients.close()
            raise
        self._connected = True

    async def close(self, drain_timeout: float = 30.0) -> None:
        if not self._connected:
            return
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.close(drain_timeout) for s in subscriptions))
        self._connected = False
        senders, self._senders = list(self._senders.values()), {}
        for sender in senders:
            with contextlib.suppress(Exception):
                await sender.close()
        await self.clients.close()

    async def create_topic(self, topic: str, partitions: int = DEFAULT_PARTITIONS) -> None:
        """Service Bus topics have no partitions: concurrency comes from sessions (keys), so
        ``partitions`` is checked and otherwise ignored."""
        self._check_open()
        if partitions < 1:
            raise BrokerConfigError("partitions must be at least 1")
        await self._ensure_topic(topic)

    async def publish(self, topic: str, event: CloudEvent) -> None:
        await self.publish_batch(topic, (event,))

    async def publish_batch(self, topic: str, events: Sequence[CloudEvent]) -> None:
        self._check_open()
        if not events:
            return
        await self._ensure_topic(topic)
        sender = self.sender_for(topic)
        async with _translated(f"publish to {topic}"):
            if len(events) == 1:
                await sender.send_messages(self._message(events[0]))
                return
            batch = await sender.create_message_batch()
            for event in events:
                message = self._message(event)
                try:
                    batch.add_message(message)
                except MessageSizeExceededError:
                    if len(batch) == 0:
                        raise
                    await sender.send_messages(batch)
                    batch = await sender.create_message_batch()
                    batch.add_message(message)
            await sender.send_messages(batch)

    def subscribe(
        self, topic: str, group: str, options: SubscribeOptions | None = None
    ) -> ServiceBusSubscription:
        self._check_open()
        _check_names(topic, group)
        subscription = ServiceBusSubscription(self, topic, group, options)
        self._subscriptions.append(subscription)
        return subscription

    # --- entities -------------------------------------------------------------------------------
    async def declare_group(
        self, topic: str, group: str, options: SubscribeOptions | None = None
    ) -> bool:
        """Make sure group ``group`` has its subscription on ``topic`` (see the module
        docstring). Events published before a subscription exists never reach it, so
        deployments can call this ahead of the first publish. Returns whether the
        subscription carries Tether's retry rule (needed for scheduled retries)."""
        self._check_open()
        _check_names(topic, group)
        options = options or SubscribeOptions()
        # a dead-letter topic's own dead letters stay in the native queue: no endless chain
        # of <topic>.deadletter.deadletter... (and a session-less message, which every
        # session subscription refuses, stays visible instead of being forwarded onward)
        dead_letter_topic = (
            None if topic.endswith(DEAD_LETTER_SUFFIX) else options.dead_letter_topic_of(topic)
        )
        await self._ensure_topic(topic)
        if dead_letter_topic is not None:
            await self._ensure_topic(dead_letter_topic)
        if not self.settings.manage_entities:
            return False  # without Manage rights the rules cannot be read: no scheduled copies
        admin = self.clients.admin()
        async with _translated(f"subscription {topic}/{group}"):
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
        admin = self.clients.admin()
        try:
            await admin.create_subscription(
                topic,
                group,
                requires_session=self.settings.sessions,
                max_delivery_count=self.settings.max_delivery_count or options.max_deliveries,
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
        if bool(existing.requires_session) != self.settings.sessions:
            raise BrokerConfigError(
                f"subscription {topic}/{group} has requires_session="
                f"{bool(existing.requires_session)} but the broker URL says "
                f"sessions={str(self.settings.sessions).lower()}; Service Bus cannot change it"
            )
        target = _entity_name(existing.forward_dead_lettered_messages_to)
        if target.lower() != (dead_letter_topic or "").lower():
            log.warning("%s/%s forwards dead letters to %r, not %r: they go there",
                        topic, group, target or None, dead_letter_topic)

    async def _ensure_topic(self, topic: str) -> None:
        if topic in self._topics or not self.settings.manage_entities:
            return
        if not _TOPIC_NAME.match(topic):
            raise BrokerConfigError(f"{topic!r} is not a valid Service Bus topic name")
        admin = self.clients.admin()
        async with _translated(f"topic {topic}"):
            try:
                await admin.get_topic(topic)
            except ResourceNotFoundError:
                with contextlib.suppress(ResourceExistsError):
                    await admin.create_topic(topic)
        self._topics.add(topic)

    # --- internals --------------------------------------------------------------------------------
    def sender_for(self, topic: str) -> Sender:
        sender = self._senders.get(topic)
        if sender is None:
            sender = self._senders[topic] = self.clients.sender(topic)
        return sender

    def _message(self, event: CloudEvent) -> ServiceBusMessage:
        keyless = f"tether-keyless-{next(self._keyless) % KEYLESS_SESSIONS}"
        return to_servicebus(event, session_id=keyless)

    def _check_open(self) -> None:
        if not self._connected:
            raise BrokerClosedError(f"broker {self.url} is not connected (closed or never opened)")


def _check_names(topic: str, group: str) -> None:
    if not _TOPIC_NAME.match(topic):
        raise BrokerConfigError(f"{topic!r} is not a valid Service Bus topic name")
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


__all__ = [
    "AzureServiceBusClients",
    "ServiceBusBroker",
    "ServiceBusClients",
    "ServiceBusSettings",
    "ServiceBusSubscription",
    "from_url",
    "record_from",
    "retry_filter",
]
