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

import enum
import json
import logging
from typing import Protocol

import aiohttp

from tether.platform.events import CloudEvent, InvalidCloudEventError
from tether.platform.events.json_format import CONTENT_TYPE, to_json

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_TIMEOUT = 60.0
API_TOKEN_HEADER = "dapr-api-token"


class Outcome(enum.Enum):
    SUCCESS = "SUCCESS"
    RETRY = "RETRY"
    DROP = "DROP"


class AppChannel(Protocol):
    """Delivers one event to the app at ``path`` and reports what to do with it."""

    async def deliver(self, path: str, event: CloudEvent) -> Outcome: ...


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
    word = answer["status"].strip().upper()
    if word in ("", "SUCCESS"):
        return Outcome.SUCCESS
    if word == "DROP":
        return Outcome.DROP
    if word != "RETRY":
        log.warning("unknown status %r from the app; the event will be retried", answer["status"])
    return Outcome.RETRY


class HttpAppChannel:
    """POSTs structured CloudEvents to ``http://{host}:{app_port}/{path}``."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        app_port: int,
        *,
        host: str = DEFAULT_HOST,
        timeout: float = DEFAULT_TIMEOUT,
        api_token: str | None = None,
    ) -> None:
        self._session = session
        self._base = f"http://{host}:{app_port}"
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._api_token = api_token

    def url_for(self, path: str) -> str:
        return f"{self._base}/{path.lstrip('/')}"

    async def deliver(self, path: str, event: CloudEvent) -> Outcome:
        try:
            body = to_json(event)
        except InvalidCloudEventError as exc:  # it would fail the same way every time
            log.error("event %s cannot be written as JSON, dropping it: %s", event.id, exc)
            return Outcome.DROP
        headers = {"Content-Type": CONTENT_TYPE}
        for name in ("traceparent", "tracestate"):
            value = event.extensions.get(name)
            if value:
                headers[name] = value
        if self._api_token is not None:
            headers[API_TOKEN_HEADER] = self._api_token
        url = self.url_for(path)
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=self._timeout
            ) as response:
                answer = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            log.warning("delivering event %s to %s failed, will retry: %r", event.id, url, exc)
            return Outcome.RETRY
        outcome = outcome_of(status, answer)
        if outcome is not Outcome.SUCCESS:
            log.info("app answered %s for event %s at %s: %s", status, event.id, url, outcome.name)
        return outcome
