"""How an event reaches the app, and what the app's answer means (Dapr's HTTP contract).

``pkg/runtime/subscription/postman/http/http.go`` in Dapr, summarised in docs/delivery.md:

- 2xx with an empty body, a body that is not a JSON object with a string ``status``, or
  ``{"status": "SUCCESS"}`` / ``{"status": ""}``: SUCCESS (ack);
- 2xx with ``{"status": "RETRY"}`` or any status Tether does not know: RETRY;
- 2xx with ``{"status": "DROP"}``, or HTTP 404: DROP (dead-letter topic if set, else ack);
- any other status code, a timeout or a refused connection: RETRY.

Status words are compared case-insensitively (Dapr compares exact upper case; an app that
answers ``success`` means it).
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections.abc import Sequence
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

from tether.platform import tracing
from tether.platform.components import (
    ProgrammaticSubscriptionError,
    Subscription,
    parse_programmatic,
)
from tether.platform.components.programmatic import SUBSCRIBE_PATH
from tether.platform.events import CloudEvent, InvalidCloudEventError
from tether.platform.events.ids import new_id
from tether.platform.events.json_format import CONTENT_TYPE, event_object, to_json
from tether.platform.http1 import Http1Pool

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 60.0
API_TOKEN_HEADER = "dapr-api-token"
BULK_CONTENT_TYPE = "application/json"
BULK_EVENT_TYPE = "com.dapr.event.sent.bulk"
#: connections one channel keeps to the app at most (aiohttp's default; the delivery
#: workers bound the deliveries in flight)
MAX_CONNECTIONS = 100


class Outcome(enum.Enum):
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    DROP = "DROP"


class AppChannel(Protocol):
    """Delivers one event to the app at ``path`` and reports what to do with it."""

    async def deliver(self, path: str, event: CloudEvent) -> Outcome: ...


class BulkAppChannel(AppChannel, Protocol):
    """A channel that can also deliver many events in one call (bulk subscribe)."""

    async def deliver_bulk(
        self, path: str, events: Sequence[CloudEvent], *, topic: str, pubsub_name: str
    ) -> list[Outcome]:
        """One outcome per event, in order."""
        ...


def outcome_of(status: int, body: bytes) -> Outcome:
    """The outcome of one HTTP answer from the app."""
    if status == 404:
        return Outcome.DROP
    if not 200 <= status < 300:
        return Outcome.RETRY
    try:
        answer = json.loads(body) if body.strip() else None
    except ValueError:  # includes UnicodeDecodeError: a non-JSON body is a plain success
        return Outcome.SUCCESS
    if not isinstance(answer, dict) or not isinstance(answer.get("status"), str):
        return Outcome.SUCCESS
    return word_outcome(answer["status"])


def word_outcome(status: str) -> Outcome:
    """The outcome a ``status`` word of a 2xx answer stands for."""
    word = status.strip().upper()
    if word in ("", "SUCCESS"):
        return Outcome.SUCCESS
    if word == "DROP":
        return Outcome.DROP
    if word != "RETRY":
        log.warning("unknown status %r from the app; the event will be retried", status)
    return Outcome.RETRY


def bulk_outcomes(status: int, body: bytes, entry_ids: Sequence[str]) -> list[Outcome]:
    """Outcomes of a bulk answer ``{"statuses": [{"entryId", "status"}]}``: 404 drops all,
    other non-2xx retries all, a missing or unreadable entry is retried."""
    if status == 404:
        return [Outcome.DROP] * len(entry_ids)
    if not 200 <= status < 300:
        return [Outcome.RETRY] * len(entry_ids)
    found: dict[str, Outcome] = {}
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    statuses = answer.get("statuses") if isinstance(answer, dict) else None
    for item in statuses if isinstance(statuses, list) else ():
        if isinstance(item, dict) and isinstance(item.get("status"), str):
            found[str(item.get("entryId"))] = word_outcome(item["status"])
    return [found.get(entry_id, Outcome.RETRY) for entry_id in entry_ids]


_ENTRY_TAIL = f'"contentType":{json.dumps(CONTENT_TYPE)},"metadata":{{}}'


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


class HttpAppChannel:
    """POSTs structured CloudEvents to ``http://{host}:{app_port}/{path}``, on kept-alive
    connections of its own (:mod:`tether.platform.http1`); :meth:`close` ends them."""

    def __init__(
        self,
        app_port: int,
        *,
        host: str = DEFAULT_HOST,
        timeout: float = DEFAULT_TIMEOUT,
        api_token: str | None = None,
    ) -> None:
        self._pool = Http1Pool(host, app_port, limit=MAX_CONNECTIONS)
        self._base = f"http://{host}:{app_port}"
        self._timeout = timeout
        self._api_token = api_token

    async def close(self) -> None:
        await self._pool.close()

    def url_for(self, path: str) -> str:
        return f"{self._base}/{path.lstrip('/')}"

    async def deliver(self, path: str, event: CloudEvent) -> Outcome:
        try:
            body = to_json(event)
        except InvalidCloudEventError as exc:  # it would fail the same way every time
            log.error("event %s cannot be written as JSON, dropping it: %s", event.id, exc)
            return Outcome.DROP
        answer = await self._post(path, body, CONTENT_TYPE, event, event.id)
        if answer is None:
            return Outcome.RETRY
        status, reply = answer
        outcome = outcome_of(status, reply)
        if outcome is not Outcome.SUCCESS:
            log.info("app answered %s for event %s at /%s: %s", status, event.id,
                     path.lstrip("/"), outcome.name)
        return outcome

    async def deliver_bulk(
        self, path: str, events: Sequence[CloudEvent], *, topic: str, pubsub_name: str
    ) -> list[Outcome]:
        """Dapr's bulk envelope as ``application/json``; unserialisable events are dropped."""
        # each entry is encoded once, as a fragment of the envelope (encoding is most of
        # the cost of a bulk); an event that cannot be encoded is dropped alone
        ids: list[str] = []
        fragments: list[str] = []
        outcomes: dict[int, Outcome] = {}
        for index, event in enumerate(events):
            try:
                encoded = _dumps(event_object(event))
            except (InvalidCloudEventError, TypeError, ValueError) as exc:
                log.error("event %s cannot be written as JSON, dropping it: %s", event.id, exc)
                outcomes[index] = Outcome.DROP
                continue
            entry_id = new_id()
            ids.append(entry_id)
            fragments.append(f'{{"entryId":"{entry_id}","event":{encoded},{_ENTRY_TAIL}}}')
        if ids:
            bulk_id = new_id()
            head = _dumps({"id": bulk_id, "type": BULK_EVENT_TYPE, "topic": topic,
                           "pubsubname": pubsub_name, "metadata": {}})
            body = f'{head[:-1]},"entries":[{",".join(fragments)}]}}'.encode()
            answer = await self._post(path, body, BULK_CONTENT_TYPE, events[0], bulk_id)
            got = [Outcome.RETRY] * len(ids) if answer is None else bulk_outcomes(*answer, ids)
        else:
            got = []
        replies = iter(got)
        return [outcomes[i] if i in outcomes else next(replies) for i in range(len(events))]

    async def _post(
        self, path: str, body: bytes, content_type: str, event: CloudEvent, what: str
    ) -> tuple[int, bytes] | None:
        """(status, body) of the app's answer; None when it could not be had (retry)."""
        headers = {"Content-Type": content_type}
        # the delivery span's context when tracing, else the publisher's (the event's)
        trace = tracing.outgoing() or event.extensions
        for name in tracing.TRACE_HEADERS:
            value = trace.get(name)
            if value:
                headers[name] = value
        if self._api_token is not None:
            headers[API_TOKEN_HEADER] = self._api_token
        try:
            answer = await self._pool.request(
                "POST", _target(path), body, headers, timeout=self._timeout
            )
        except (TimeoutError, OSError, ValueError) as exc:  # ValueError: an unsendable header
            log.warning("delivering %s to %s failed, will retry: %r", what, self.url_for(path),
                        exc)
            return None
        return answer.status, answer.body


def _target(path: str) -> str:
    # a route is a path (maybe with a query) from the app or a resource file: keep its
    # escapes and reserved characters, escape the rest as a URL would
    return quote("/" + path.lstrip("/"), safe="/%?&=:@!$'()*+,;~")


DEFAULT_SUBSCRIBE_TIMEOUT = 5.0
#: a subscription list is small; a bigger reply is a wrong endpoint, not a list
MAX_SUBSCRIBE_BODY = 4 * 1024 * 1024


async def fetch_programmatic_subscriptions(
    session: aiohttp.ClientSession,
    app_base_url: str,
    *,
    app_id: str | None = None,
    timeout: float = DEFAULT_SUBSCRIBE_TIMEOUT,
    api_token: str | None = None,
) -> list[Subscription]:
    """Ask the app for its subscriptions (``GET {app_base_url}/dapr/subscribe``).

    404 or an empty body means none (Dapr). Any other failure (connection refused, timeout,
    non-2xx, non-JSON, wrong shape, oversized reply) raises ProgrammaticSubscriptionError; the
    caller decides whether to retry while the app is starting. ``timeout`` bounds the whole
    exchange. ``api_token`` is sent as ``dapr-api-token`` (APP_API_TOKEN).
    """
    url = app_base_url.rstrip("/") + SUBSCRIBE_PATH
    origin = f"GET {url}"
    headers = {"dapr-api-token": api_token} if api_token else {}
    try:
        async with asyncio.timeout(timeout):
            async with session.get(url, headers=headers) as response:
                if response.status == 404:
                    return []
                if not 200 <= response.status < 300:
                    raise ProgrammaticSubscriptionError(
                        origin, f"the app answered HTTP {response.status}", status=response.status
                    )
                body = await response.content.read(MAX_SUBSCRIBE_BODY + 1)
    except TimeoutError as exc:
        raise ProgrammaticSubscriptionError(
            origin, f"the app did not answer within {timeout:g} s"
        ) from exc
    except aiohttp.ClientError as exc:
        raise ProgrammaticSubscriptionError(origin, f"request failed: {exc}") from exc
    if len(body) > MAX_SUBSCRIBE_BODY:
        raise ProgrammaticSubscriptionError(origin, f"reply is over {MAX_SUBSCRIBE_BODY} bytes")
    if not body.strip():
        return []
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProgrammaticSubscriptionError(origin, f"reply is not JSON: {exc}") from exc
    return parse_programmatic(payload, app_id, origin=origin)
