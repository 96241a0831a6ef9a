"""schemathesis against a live sidecar: the document as the fuzzer sees it, its settings,
and the checks beyond schemathesis's own (no 5xx but Dapr's by-design ones; a refused state
write changes nothing; every key written stays readable)."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import hypothesis
import hypothesis.errors
import redis
import requests
import yaml
from schemathesis import Case, CheckContext, Config, Response
from schemathesis.openapi import from_dict
from schemathesis.schemas import BaseSchema

from tests.api import live
from tether.sidecar.openapi import document

#: the path parameters naming a component, and the component the fuzzer should mostly hit
#: (the negative cases still try unknown names)
_COMPONENT_PARAMETERS = {
    "PubSub": live.PUBSUB, "StateStore": live.STATE, "SecretStore": live.SECRETS,
    "ConfigurationStore": live.CONFIGURATION, "LockStore": live.LOCK,
    "WorkflowComponent": "dapr",
}
#: checks that cannot hold for this API: `positive_data_acceptance` (a schema-valid request
#: may name a key, ETag or instance that does not exist), `use_after_free` (GET of a deleted
#: state key is 204, as Dapr), `ensure_resource_availability` (a workflow started without a
#: worker registered is refused), `ignored_auth` (these runs set no API token),
#: `allow_header_conformance` (aiohttp's `Allow` lists every route matching the path: GET
#: /v1.0/state/{store}/bulk reads the key "bulk", as in Dapr, where OpenAPI's concrete path
#: wins); `not_a_server_error` is replaced by `no_unexpected_server_error` below
_DISABLED_CHECKS = ("positive_data_acceptance", "use_after_free", "ensure_resource_availability",
                    "ignored_auth", "allow_header_conformance", "not_a_server_error")


def fuzz_document() -> dict[str, Any]:
    """The sidecar's document, its component names narrowed to the live sidecar's."""
    doc: dict[str, Any] = yaml.safe_load(document())
    doc = copy.deepcopy(doc)
    parameters = doc["components"]["parameters"]
    for name, component in _COMPONENT_PARAMETERS.items():
        parameters[name]["schema"] = {"type": "string", "enum": [component]}
    return doc


def fuzz_schema(max_examples: int, seed: int = 10) -> BaseSchema:
    """The schema schemathesis fuzzes: deterministic, ``max_examples`` per operation in the
    fuzzing phase (the examples and coverage phases add their own). The sidecar's URL is
    given to each call (the sidecar starts after the tests are collected)."""
    config = Config.from_dict({
        "seed": seed,
        "generation": {"mode": "all", "max-examples": max_examples, "deterministic": True,
                       "database": "none"},
        "checks": {name: {"enabled": False} for name in _DISABLED_CHECKS},
        "request-timeout": 30,
        # the reports show the requests as sent (a body's "keys" is not a secret here)
        "output": {"sanitization": {"enabled": False}},
    })
    return from_dict(fuzz_document(), config=config)


# --- 5xx ----------------------------------------------------------------------------------

def _body(case: Case[Any]) -> Any:
    return case.body if isinstance(case.body, dict | list) else None


def _resource_id(case: Case[Any]) -> str:
    body = _body(case)
    return str(body.get("resourceId")) if isinstance(body, dict) else ""


#: the 5xx answers Dapr gives by design for what the caller sent (docs/http-api.md), each
#: with the request it is right for; any other 5xx fails the run
_BY_DESIGN: Mapping[str, Any] = {
    # an invalid CloudEvent from the caller (Dapr's PubSubCloudEventCreation is a 500)
    "ERR_PUBSUB_CLOUD_EVENTS_SER": lambda case, backend: "/publish/" in case.path,
    # the query API on a store without it
    "ERR_STATE_STORE_NOT_SUPPORTED": lambda case, backend: (
        case.path.endswith("/query") and backend == "redis"),
    # the instance list on a workflow store without the query API (501)
    "ERR_LIST_WORKFLOWS": lambda case, backend: backend == "redis",
    # a call to an app no sidecar serves (the fuzzed sidecar takes no calls): Dapr's 500
    "ERR_DIRECT_INVOKE": lambda case, backend: case.path.startswith("/v1.0/invoke/"),
    # an actor type no sidecar hosts (the fuzzed sidecar hosts none): Dapr's 500
    "ERR_ACTOR_INVOKE_METHOD": lambda case, backend: case.path.startswith("/v1.0/actors/"),
    # actor state and reminders without an actorStateStore (the fuzzed app has none)
    "ERR_ACTOR_RUNTIME_NOT_FOUND": lambda case, backend: case.path.startswith("/v1.0/actors/"),
    # a resourceId containing the key separator (Dapr answers 500)
    "ERR_TRY_LOCK": lambda case, backend: "||" in _resource_id(case),
    "ERR_UNLOCK": lambda case, backend: "||" in _resource_id(case),
}


def server_error_check(backend: str) -> Any:
    """A check failing on any 5xx but the by-design ones above, and the configuration
    unsubscribe call's ``{"ok": false}`` for an unknown id (Dapr's shape)."""

    def no_unexpected_server_error(ctx: CheckContext, response: Response, case: Case[Any]) -> None:
        if response.status_code < 500:
            return
        try:
            body = json.loads(response.content)
        except ValueError:
            body = None
        if isinstance(body, dict):
            allowed = _BY_DESIGN.get(str(body.get("errorCode")))
            if allowed is not None and allowed(case, backend):
                return
            if body.get("ok") is False and case.path.endswith("/unsubscribe"):
                return
        raise AssertionError(
            f"{case.method} {case.formatted_path} answered {response.status_code}: "
            f"{response.content[:500]!r}")

    return no_unexpected_server_error


# --- state invariants ---------------------------------------------------------------------

_WRITES = {("POST", "/v1.0/state/{store}"), ("PUT", "/v1.0/state/{store}"),
           ("DELETE", "/v1.0/state/{store}/{key}"),
           ("POST", "/v1.0/state/{store}/transaction"),
           ("PUT", "/v1.0/state/{store}/transaction")}


def _written_keys(case: Case[Any]) -> list[str]:
    """The keys a state write names (the ones a store could hold: not empty, no ``||``)."""
    path_key = (case.path_parameters or {}).get("key")
    body = _body(case)
    raw: list[Any] = [path_key]
    if isinstance(body, list):  # a save
        raw += [item.get("key") for item in body if isinstance(item, dict)]
    elif isinstance(body, dict) and isinstance(body.get("operations"), list):
        raw += [op["request"].get("key") for op in body["operations"]
                if isinstance(op, dict) and isinstance(op.get("request"), dict)]
    return sorted({k for k in raw if isinstance(k, str) and k and "||" not in k})


@dataclass
class StateGuard:
    """Reads the keys a state write names before and after it, through the bulk API."""

    base_url: str
    session: requests.Session

    def read(self, keys: list[str]) -> dict[str, Any] | None:
        """{key: (data, etag, metadata) or None}; None when the sidecar refuses the keys
        (4xx: not keys a store can hold). A 5xx means the store cannot read them back."""
        response = self.session.post(f"{self.base_url}/v1.0/state/{live.STATE}/bulk",
                                     json={"keys": keys}, timeout=30)
        assert response.status_code < 500, (
            f"the keys {keys!r} cannot be read back: {response.status_code} "
            f"{response.content[:500]!r}")
        if response.status_code != 200:
            return None
        return {item["key"]: (json.dumps(item.get("data")), item.get("etag"),
                              item.get("metadata") or {}) if "etag" in item else None
                for item in response.json()}

    def before(self, case: Case[Any]) -> tuple[list[str], dict[str, Any] | None] | None:
        if (case.method.upper(), case.path) not in _WRITES:
            return None
        if (case.path_parameters or {}).get("store") != live.STATE:
            return None
        keys = _written_keys(case)
        return (keys, self.read(keys)) if keys else None

    def after(self, case: Case[Any], response: requests.Response | Response,
              before: tuple[list[str], dict[str, Any] | None] | None) -> None:
        """Every named key is still readable; a refused write changed none of them (but a
        save, which Dapr applies item by item, may have saved the items before the store's
        refusal, ERR_STATE_SAVE)."""
        if before is None:
            return
        keys, old = before
        new = self.read(keys)
        status = response.status_code
        if status < 400 or old is None or new is None:
            return
        try:
            code = json.loads(response.content).get("errorCode")
        except (ValueError, AttributeError):
            code = None
        if code == "ERR_STATE_SAVE":
            return
        for key in keys:
            was, now = old.get(key), new.get(key)
            expired = was is not None and now is None and "ttlExpireTime" in was[2]
            assert was == now or expired, (
                f"{case.method} {case.formatted_path} was refused ({status} {code}) but "
                f"changed {key!r}: {was!r} -> {now!r}")


# --- the runs -----------------------------------------------------------------------------

#: a key saved before the fuzzing with a known value: it must read back unchanged after
CANARY_VALUE = {"canary": ["still", "here"], "n": 7}


def call_and_check(case: Case[Any], sidecar: live.LiveSidecar, guard: StateGuard) -> None:
    """One case: called, the state it names guarded, the answer checked."""
    sidecar.cases += 1
    before = guard.before(case)
    response = case.call(base_url=sidecar.url)
    guard.after(case, response, before)
    case.validate_response(response, additional_checks=[server_error_check(sidecar.backend)])


def run_links(schema: BaseSchema, sidecar: live.LiveSidecar, guard: StateGuard,
              scenarios: int, steps: int) -> None:
    """Scenarios along the document's links, each call guarded and checked.

    Which links a scenario can follow depends on the sidecar's answers, so a replay may
    draw differently and Hypothesis stop with Flaky: as schemathesis's own runner does, that
    ends the run, which fails if any call failed (without shrinking: a live sidecar's state
    does not replay)."""
    check = server_error_check(sidecar.backend)
    failures: list[BaseException] = []

    class Links(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"base_url": sidecar.url}

        def call(self, case: Case[Any], **kwargs: Any) -> Response:
            sidecar.cases += 1
            try:
                before = guard.before(case)
                response: Response = case.call(**kwargs)
                guard.after(case, response, before)
            except AssertionError as exc:
                failures.append(exc)
                raise
            return response

        def validate_response(self, response: Response, case: Case[Any],
                              additional_checks: Any = None, **kwargs: Any) -> None:
            try:
                super().validate_response(response, case, additional_checks=[check], **kwargs)
            except Exception as exc:
                failures.append(exc)
                raise

    try:
        Links.run(settings=hypothesis.settings(
            max_examples=scenarios, stateful_step_count=steps, derandomize=True,
            database=None, deadline=None, phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck)))
    except hypothesis.errors.Flaky:
        if failures:
            raise failures[0] from None


def read_back(url: str, keys: list[str]) -> None:
    """The keys read through the bulk API, which must answer 200."""
    response = requests.post(f"{url}/v1.0/state/{live.STATE}/bulk", json={"keys": keys},
                             timeout=30)
    assert response.status_code == 200, (response.status_code, response.text[:500])


def check_store_reads_back(sidecar: live.LiveSidecar, redis_address: str) -> None:
    """After a run: the canary reads back unchanged, and every key of the store reads."""
    canary = requests.get(f"{sidecar.url}/v1.0/state/{live.STATE}/{sidecar.canary}",
                          timeout=30)
    assert canary.status_code == 200, canary.text
    assert canary.json() == CANARY_VALUE
    keys = _every_key(sidecar, redis_address)
    assert sidecar.canary in keys
    for start in range(0, len(keys), 100):
        read_back(sidecar.url, keys[start:start + 100])


def _every_key(sidecar: live.LiveSidecar, redis_address: str) -> list[str]:
    """The app's keys in the store: from Redis itself, else through the query API (which
    must answer every page)."""
    if sidecar.backend == "redis":
        host, port = redis_address.split(":")
        prefix = f"{sidecar.app_id}||"
        with redis.Redis(host=host, port=int(port)) as client:
            return sorted(k.decode()[len(prefix):] for k in client.scan_iter(f"{prefix}*"))
    keys: list[str] = []
    token = None
    while True:
        page: dict[str, Any] = {"limit": 100, **({"token": token} if token else {})}
        response = requests.post(f"{sidecar.url}/v1.0-alpha1/state/{live.STATE}/query",
                                 json={"page": page}, timeout=30)
        assert response.status_code == 200, (response.status_code, response.text[:500])
        body = response.json()
        keys += [item["key"] for item in body["results"]]
        token = body.get("token")
        if not token:
            return keys
