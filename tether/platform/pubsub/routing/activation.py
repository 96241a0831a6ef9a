"""The ``event`` value CEL expressions see, built as Dapr builds it.

Dapr evaluates routing rules against the JSON CloudEvent envelope decoded into Go values
(``pkg/runtime/subscription/subscription.go``), so:

- attributes and extensions are top-level keys; unset optional attributes are absent
  (selecting one is an evaluation error, ``has(event.subject)`` is false);
- ``time`` is the RFC 3339 string, not a timestamp (``timestamp(event.time)`` converts it);
- ``data`` is the decoded JSON value with every number a double, as Go's ``encoding/json``
  decodes them; text data is a string; binary data is bytes, and ``data_base64`` carries it
  base64-encoded too (a structured Dapr envelope has only ``data_base64`` for binary data);
- an event without data has no ``data`` key.

cel-expr-python 0.1.3 cuts a ``bytes`` or ``str`` value at its first NUL character (it
converts through a C string). ``bytearray`` survives, so bytes are passed as that; a string
holding NUL cannot be passed intact, so building the activation fails (an evaluation error)
rather than letting a rule match a truncated string. CloudEvents attributes cannot hold
control characters; data strings rarely do.

Only the fields named in :class:`~.references.Needs` are built (see that module for why).
"""

from __future__ import annotations

import base64
from typing import Any

from tether.platform.events.event import CloudEvent, format_time
from tether.platform.pubsub.routing.references import Needs

_ABSENT = object()


def activation(event: CloudEvent, needs: Needs) -> dict[str, Any]:
    """The ``event`` map restricted to ``needs`` (everything when ``needs.whole``)."""
    names = _all_names(event) if needs.whole else needs.fields
    built: dict[str, Any] = {}
    for name in names:
        value = _field(event, name)
        if value is _ABSENT:
            continue
        child = None if needs.whole else needs.fields[name]
        built[name] = _project(value, child) if name == "data" else _plain(value)
    return built


def _all_names(event: CloudEvent) -> list[str]:
    names = ["id", "source", "type", "specversion", "subject", "time"]
    names += ["datacontenttype", "dataschema", "data", "data_base64", *event.extensions]
    return names


def _field(event: CloudEvent, name: str) -> Any:
    if name in ("id", "source", "type", "specversion"):
        return getattr(event, name)
    if name in ("subject", "datacontenttype", "dataschema"):
        value = getattr(event, name)
        return _ABSENT if value is None else value
    if name == "time":
        return _ABSENT if event.time is None else format_time(event.time)
    if name == "data":
        return _ABSENT if event.data is None else event.data
    if name == "data_base64":
        data = event.data
        if isinstance(data, (bytes, bytearray, memoryview)):
            return base64.b64encode(data).decode()
        return _ABSENT
    return event.extensions.get(name, _ABSENT)


def _project(value: Any, needs: Needs | None) -> Any:
    """``value`` cut down to ``needs`` (all of it for None), JSON numbers made doubles."""
    if needs is None or needs.whole or not isinstance(value, dict):
        return _doubles(value)
    return {
        name: _project(value[name], child) for name, child in needs.fields.items() if name in value
    }


def _doubles(value: Any) -> Any:
    if isinstance(value, bool) or value is None:  # bool before int: it is an int
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {_plain(k): _doubles(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_doubles(v) for v in value]
    return _plain(value)


def _plain(value: Any) -> Any:
    """A scalar the CEL binding takes intact (see the module docstring about NUL)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("a string holding NUL cannot be handed to CEL intact")
        return value
    if isinstance(value, (bytes, memoryview)):
        return bytearray(value)
    return value
