"""Secrets on :class:`tether.Client`: ``get_secret`` and ``get_bulk_secret`` over the
sidecar's ``/v1.0/secrets`` API (docs/client.md, docs/secrets.md). Method names and
arguments follow Dapr's Python SDK."""

from __future__ import annotations

from collections.abc import Mapping

from tether.sdk.client_core import ClientBase, operation
from tether.sdk.client_errors import TetherApiError
from tether.sdk.client_http import Call, Reply, metadata_params, segment
from tether.sdk.client_plan import Plan


def secret_call(store: str, name: str, metadata: Mapping[str, str] | None) -> Call:
    return Call("GET", f"/v1.0/secrets/{segment(store)}/{segment(name)}", metadata_params(metadata))


def bulk_secret_call(store: str, metadata: Mapping[str, str] | None) -> Call:
    return Call("GET", f"/v1.0/secrets/{segment(store)}/bulk", metadata_params(metadata))


def _strings(value: object, what: str, reply: Reply) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise TetherApiError(reply.status, None, f"{what} is not an object of strings")
    return dict(value)


def secret_of(reply: Reply) -> dict[str, str]:
    return _strings(reply.json(), "the secret", reply)


def bulk_secret_of(reply: Reply) -> dict[str, dict[str, str]]:
    body = reply.json()
    if not isinstance(body, dict):
        raise TetherApiError(reply.status, None, "the bulk secret answer is not an object")
    return {name: _strings(secret, f"secret {name!r}", reply) for name, secret in body.items()}


class SecretsMixin(ClientBase):
    """``get_secret`` and ``get_bulk_secret`` for both clients."""

    @operation
    def get_secret(
        self, store: str, name: str, metadata: Mapping[str, str] | None = None
    ) -> Plan[dict[str, str]]:
        """``GET /v1.0/secrets/{store}/{name}``: the secret's ``{key: value}`` (one entry
        ``{name: value}`` for a single-valued secret). ``metadata`` goes to the store as
        ``metadata.*`` parameters. Denied by scope: 403 ``ERR_PERMISSION_DENIED``; an
        unknown name: 404 ``ERR_SECRET_GET`` (both :class:`TetherApiError`)."""
        return secret_of((yield secret_call(store, name, metadata)))

    @operation
    def get_bulk_secret(
        self, store: str, metadata: Mapping[str, str] | None = None
    ) -> Plan[dict[str, dict[str, str]]]:
        """``GET /v1.0/secrets/{store}/bulk``: every secret the app's scopes allow, as
        ``{name: {key: value}}``."""
        return bulk_secret_of((yield bulk_secret_call(store, metadata)))
