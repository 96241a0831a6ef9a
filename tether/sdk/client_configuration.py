"""Configuration on :class:`tether.Client`: ``get_configuration``,
``subscribe_configuration`` and ``unsubscribe_configuration`` over the sidecar's
``/v1.0/configuration`` API (docs/client.md, docs/configuration.md). Named as in Dapr's
Python SDK; over HTTP a subscription's changes are pushed by the sidecar to the app
(``POST /configuration/{store}/{key}``), so subscribing returns only the id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode

from tether.sdk.client_core import ClientBase, operation
from tether.sdk.client_errors import TetherApiError
from tether.sdk.client_http import Call, Reply, metadata_params, segment
from tether.sdk.client_plan import Plan, Send


@dataclass(frozen=True, slots=True)
class ConfigurationItem:
    """One key's value as the store holds it, with its version and metadata."""

    value: str
    version: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


def _path(store: str, tail: str, keys: str | Sequence[str],
          metadata: Mapping[str, str] | None) -> str:
    # the key parameter repeats (key=a&key=b), which Call.params (a mapping) cannot hold:
    # the query goes into the path, quoted here
    names = [keys] if isinstance(keys, str) else list(keys)
    pairs = [("key", name) for name in names]
    pairs += metadata_params(metadata).items()
    query = urlencode(pairs, quote_via=quote)
    return f"/v1.0/configuration/{segment(store)}{tail}" + (f"?{query}" if query else "")


def get_call(store: str, keys: str | Sequence[str], metadata: Mapping[str, str] | None) -> Call:
    return Call("GET", _path(store, "", keys, metadata))


def subscribe_call(
    store: str, keys: str | Sequence[str], metadata: Mapping[str, str] | None
) -> Call:
    return Call("GET", _path(store, "/subscribe", keys, metadata))


def unsubscribe_call(store: str, subscription_id: str) -> Call:
    return Call("GET", f"/v1.0/configuration/{segment(store)}/{segment(subscription_id)}"
                       "/unsubscribe")


def items_of(reply: Reply) -> dict[str, ConfigurationItem]:
    if reply.status == 204:
        return {}
    body = reply.json()
    if not isinstance(body, dict):
        raise TetherApiError(reply.status, None, "the configuration answer is not an object")
    items = {}
    for key, item in body.items():
        if not isinstance(item, dict):
            raise TetherApiError(reply.status, None, f"configuration item {key!r} is malformed")
        metadata = item.get("metadata") or {}
        items[key] = ConfigurationItem(str(item.get("value", "")), str(item.get("version", "")),
                                       {str(k): str(v) for k, v in metadata.items()})
    return items


def subscription_id_of(reply: Reply) -> str:
    body = reply.json()
    sub_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(sub_id, str) or not sub_id:
        raise TetherApiError(reply.status, None, f"unexpected subscribe answer {reply.body!r}")
    return sub_id


def unsubscribed(reply: Reply) -> bool:
    """True when the subscription was stopped; False for an id the sidecar does not know
    (Dapr answers that with 500 ``{"ok": false, "message": ...}``); other errors raise."""
    try:
        body = reply.json()
    except ValueError:
        body = None
    ok = body.get("ok") if isinstance(body, dict) else None
    if isinstance(ok, bool) and "errorCode" not in body:
        return ok
    if not reply.ok:
        raise reply.error()
    return True


class ConfigurationMixin(ClientBase):
    """Configuration methods for both clients."""

    @operation
    def get_configuration(
        self, store: str, keys: str | Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> Plan[dict[str, ConfigurationItem]]:
        """``GET /v1.0/configuration/{store}?key=...``: ``{key: ConfigurationItem}`` for
        the keys found (no keys: every key); {} when none is found."""
        return items_of((yield get_call(store, keys, metadata)))

    @operation
    def subscribe_configuration(
        self, store: str, keys: str | Sequence[str] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> Plan[str]:
        """``GET /v1.0/configuration/{store}/subscribe``: the subscription's id. The sidecar
        then POSTs each change to the app at ``/configuration/{store}/{key}`` (the sidecar
        needs an app port: without one, 500 ``ERR_APP_CHANNEL_NIL``)."""
        return subscription_id_of((yield subscribe_call(store, keys, metadata)))

    @operation
    def unsubscribe_configuration(self, store: str, subscription_id: str) -> Plan[bool]:
        """``GET /v1.0/configuration/{store}/{id}/unsubscribe``: True once stopped, False
        for an unknown id."""
        return unsubscribed((yield Send(unsubscribe_call(store, subscription_id))))
