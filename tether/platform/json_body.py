"""A request body read as JSON the same way on every route and in every block.

Bytes that are not JSON (or not UTF-8), JSON nested deeper than the parser can follow, and
a value of the wrong kind all become one :class:`JsonBodyError` whose message says which;
each caller turns it into its API's error (a 400 in Dapr's shape), never a 500.
"""

from __future__ import annotations

import json
from typing import Any

from tether.platform.errors import TetherError

_KINDS: dict[type, str] = {dict: "object", list: "array", str: "string"}
_REQUIRED: Any = object()


class JsonBodyError(TetherError, ValueError):
    """A body that is not the JSON asked for; the message names ``what`` and the problem."""


def read_json(body: bytes, kind: type | None = None, *, what: str = "the body",
              empty: Any = _REQUIRED) -> Any:
    """The JSON value of ``body``, of type ``kind`` when given. An empty (or blank) body
    is ``empty`` when given, else an error."""
    if empty is not _REQUIRED and not body.strip():
        return empty
    try:
        value = json.loads(body)
    except RecursionError:
        raise JsonBodyError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise JsonBodyError(f"{what} is not valid JSON: {exc}") from None
    if kind is not None and not isinstance(value, kind):
        raise JsonBodyError(f"{what} must be a JSON {_KINDS.get(kind, kind.__name__)}")
    return value
