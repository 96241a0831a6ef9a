"""JSON payloads: every input, output and event value is stored and sent as JSON text.

Values are written as ``json.dumps`` writes them by default (``{"processed": true}``), as
Dapr's Python SDK does: samples that compare the text get the same text. A :class:`Raw`
value is JSON text already (an input or event data that came over HTTP) and is kept as the
caller wrote it, as Dapr keeps those bytes.

Beyond plain JSON values, dataclass instances and SimpleNamespace objects are accepted, as
Dapr's Python SDK does: they travel as JSON objects marked with Dapr's
"__durabletask_autoobject__" key and come back as SimpleNamespace objects (attribute access
works as on the original; the class is not restored). Anything else that json cannot encode
is a SerializationError naming the value."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from tether.platform.workflows.errors import SerializationError

AUTO_OBJECT = "__durabletask_autoobject__"


@dataclass(frozen=True, slots=True)
class Raw:
    """JSON text to store as it is (the caller checked that it is JSON)."""

    text: str


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            return {**{f.name: getattr(o, f.name) for f in dataclasses.fields(o)},
                    AUTO_OBJECT: True}
        if isinstance(o, SimpleNamespace):
            return {**vars(o), AUTO_OBJECT: True}
        return super().default(o)


def _object_hook(d: dict[str, Any]) -> Any:
    if d.pop(AUTO_OBJECT, None):
        return SimpleNamespace(**d)
    return d


def encode(value: Any, what: str) -> str | None:
    """JSON text for a value (None stays None: no payload); `what` names it in the error."""
    if value is None:
        return None
    if isinstance(value, Raw):
        return value.text
    try:
        return json.dumps(value, allow_nan=False, cls=_Encoder)
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"{what} must be JSON-serialisable, got {type(value).__name__}: {exc}") from exc


def decode(text: str | None) -> Any:
    return None if text is None else json.loads(text, object_hook=_object_hook)
