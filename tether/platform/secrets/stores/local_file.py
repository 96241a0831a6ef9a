"""``secretstores.local.file``: secrets from a JSON file, read once when the sidecar starts.

As Dapr's component: ``secretsFile`` (required; a relative path is taken from the directory
``tether run`` runs in), ``nestedSeparator`` (default ``:``) joins the keys of nested objects
and array indexes into one flat name, and ``multiValued: true`` makes each top-level object
one secret whose (flattened) keys are the secret's keys.

    {"db": {"user": "app", "password": "pw"}, "token": "t"}

    multiValued false: "db:user" -> {"db:user": "app"}, "db:password" -> {...}, "token"
    multiValued true:  "db" -> {"user": "app", "password": "pw"}, "token" -> {"token": "t"}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tether.platform.components import Component, metadata
from tether.platform.secrets.stores.base import (
    Secret,
    SecretNotFoundError,
    SecretStoreConfigError,
    SecretText,
)

TYPE = "secretstores.local.file"
DEFAULT_SEPARATOR = ":"


class LocalFileStore:
    """The secrets of one JSON file, held in memory."""

    def __init__(self, name: str, secrets: Mapping[str, Secret]) -> None:
        self.name = name
        self._secrets = {k: dict(v) for k, v in secrets.items()}

    @classmethod
    def from_component(cls, component: Component, base_dir: Path | None = None) -> LocalFileStore:
        file = metadata.required(component, "secretsFile")
        separator = metadata.text(component, "nestedSeparator") or DEFAULT_SEPARATOR
        multi = metadata.boolean(component, "multiValued")
        path = Path(file) if base_dir is None else base_dir / file
        document = _read(path)
        try:
            secrets = parse_secrets(document, separator, multi)
        except ValueError as exc:
            raise SecretStoreConfigError(f"{path}: {exc}") from None
        return cls(component.name, secrets)

    async def get(self, name: str, metadata: Mapping[str, str]) -> Secret:
        found = self._secrets.get(name)
        if found is None:
            raise SecretNotFoundError(self.name, name)
        return dict(found)

    async def bulk(self, metadata: Mapping[str, str]) -> dict[str, Secret]:
        return {k: dict(v) for k, v in self._secrets.items()}


def parse_secrets(document: Any, separator: str, multi_valued: bool) -> dict[str, Secret]:
    """The secrets of a parsed JSON document; ValueError for a shape Dapr refuses too."""
    if not isinstance(document, dict):
        raise ValueError("the file must hold a JSON object of secrets")
    if not multi_valued:
        return {name: {name: value} for name, value in _flatten(document, separator).items()}
    secrets: dict[str, Secret] = {}
    for name, value in document.items():
        if isinstance(value, dict | list):
            secrets[name] = _flatten(value, separator)
        else:
            secrets[name] = {name: _scalar(value)}
    return secrets


def _flatten(value: dict[str, Any] | list[Any], separator: str) -> dict[str, str]:
    out: dict[str, str] = {}

    def visit(path: list[str], item: Any) -> None:
        if isinstance(item, dict):
            for key, child in item.items():
                visit([*path, str(key)], child)
        elif isinstance(item, list):
            for index, child in enumerate(item):
                visit([*path, str(index)], child)
        else:
            name = separator.join(path)
            if name in out:
                # {"a:b": 1, "a": {"b": 2}} flattens to one name twice (Dapr: "duplicate key")
                raise ValueError(f"the secret name {name!r} occurs twice once flattened")
            out[name] = _scalar(item)

    visit([], value)
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return SecretText(value)
    if value is None:
        return SecretText("")
    if isinstance(value, bool):
        return SecretText("true" if value else "false")
    return SecretText(json.dumps(value))  # numbers as written in JSON


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SecretStoreConfigError(
            f"secretsFile {str(path)!r} cannot be read: {reason}"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # the position only: the decoder's message never quotes the file's content
        raise SecretStoreConfigError(
            f"secretsFile {str(path)!r} is not valid JSON: "
            f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
