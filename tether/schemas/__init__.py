"""Avro schemas of the CloudEvents envelope and of the platform's own event types.

Schemas are ``*.avsc`` files shipped as package data beside this module; a schema's name is
its file name without ``.avsc``. A platform event type has a schema when a file is named after
it (``io.tether.broker.malformed.avsc``); such a schema has one field per context attribute
and extension of the event plus ``data``, so :func:`validate_event` can check a whole event.

Schemas are parsed once with :func:`fastavro.parse_schema` and cached.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, Protocol

from fastavro import parse_schema
from fastavro.validation import ValidationError
from fastavro.validation import validate as _fastavro_validate

from tether.platform.errors import TetherError

SUFFIX = ".avsc"

#: The CloudEvents Avro event format (``application/cloudevents+avro``).
CLOUDEVENT = "cloudevent"
#: The extensions a broker adds when it dead-letters an event.
DEAD_LETTER_EXTENSIONS = "io.tether.deadletter"


class Event(Protocol):
    """What validation reads of an event (tether.platform.events.CloudEvent has it; the
    schemas sit below the event type, so they name only this shape)."""

    @property
    def type(self) -> str: ...

    @property
    def data(self) -> Any: ...

    def attributes(self) -> dict[str, Any]: ...


class SchemaNotFoundError(TetherError, LookupError):
    """No schema file with that name ships with Tether."""


class SchemaValidationError(TetherError, ValueError):
    """A record does not match its schema; the message names the fields that do not."""


def available_schemas() -> list[str]:
    """Names of every schema shipped with Tether, sorted."""
    return sorted(_names())


@functools.cache
def _names() -> frozenset[str]:
    folder = resources.files(__name__)
    return frozenset(
        entry.name[: -len(SUFFIX)] for entry in folder.iterdir() if entry.name.endswith(SUFFIX)
    )


@functools.cache
def schema_source(name: str) -> dict[str, Any]:
    """The schema as written in its file (JSON), for registries and documentation."""
    entry = resources.files(__name__).joinpath(name + SUFFIX)
    if "/" in name or not entry.is_file():
        raise SchemaNotFoundError(
            f"no Avro schema named {name!r}; available: {', '.join(available_schemas())}"
        )
    source: dict[str, Any] = json.loads(entry.read_text(encoding="utf-8"))
    return source


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """The parsed schema, ready for fastavro's readers and writers (cached)."""
    parsed = parse_schema(schema_source(name))
    assert isinstance(parsed, dict)  # a record schema parses to a dict
    return parsed


def schema_for_event_type(event_type: str) -> str | None:
    """The schema name of a platform event type, or None when it has no schema."""
    # only dotted names: "cloudevent" is the envelope, not an event type
    return event_type if "." in event_type and event_type in _names() else None


def validate(record: Any, name: str) -> None:
    """Check ``record`` against schema ``name``; raise :class:`SchemaValidationError`."""
    try:
        _fastavro_validate(record, load_schema(name), raise_errors=True)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors)
        raise SchemaValidationError(f"record does not match schema {name!r}: {problems}") from exc


def event_record(event: Event) -> dict[str, Any]:
    """An event flattened into one record: context attributes, extensions and data."""
    record = event.attributes()
    record["data"] = event.data
    return record


def validate_event(event: Event) -> bool:
    """Validate a platform event against the schema of its type.

    Returns False when the type has no schema (user events), True when it was checked;
    raises :class:`SchemaValidationError` when it does not match.
    """
    name = schema_for_event_type(event.type)
    if name is None:
        return False
    validate(event_record(event), name)
    return True


def _describe(error: Any) -> str:
    # fastavro's ValidationErrorData: the field path, the expected schema and the datum
    field = getattr(error, "field", None) or "record"
    schema = getattr(error, "schema", None)
    datum = getattr(error, "datum", None)
    expected = schema if isinstance(schema, str) else json.dumps(schema)[:80]
    return f"{field}: expected {expected}, got {datum!r:.80}"
