"""A request body read as JSON the same way on every route and in every block.

Bytes that are not JSON (or not UTF-8), JSON nested too deeply, and a value of the wrong
kind all become one :class:`JsonBodyError` whose message says which;
each caller turns it into its API's error (a 400 in Dapr's shape), never a 500.

Two things Python's parser takes are refused too, as I-JSON (RFC 7493) does: ``NaN`` and
``Infinity``, which are not JSON, and a ``\\ud800``-style escape of a lone surrogate, which
is not Unicode text: no UTF-8 store, broker or HTTP answer can write either, so accepting
them meant a 500 (or a stored item nobody could read) further on. Too deep is more than
MAX_DEPTH levels, not the parser's own limit: that is Python's recursion limit minus the
caller's stack, so a value just under it was accepted here and then failed to encode, or
to decode in a worker, a few frames deeper.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tether.platform.errors import TetherError

_KINDS: dict[type, str] = {dict: "object", list: "array", str: "string"}
_REQUIRED: Any = object()
#: the escape of a high or low surrogate: where a lone one can come from
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: the deepest nesting of arrays and objects a body may have, far below Python's
#: recursion limit (1000) so that every later encode and decode has room
MAX_DEPTH = 256


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_not_json)


class JsonBodyError(TetherError, ValueError):
    """A body that is not the JSON asked for; the message names ``what`` and the problem."""


def read_json(body: bytes, kind: type | None = None, *, what: str = "the body",
              empty: Any = _REQUIRED) -> Any:
    """The JSON value of ``body``, of type ``kind`` when given. An empty (or blank) body
    is ``empty`` when given, else an error."""
    if empty is not _REQUIRED and not body.strip():
        return empty
    try:
        # strict UTF-8 (json.loads lets UTF-8-encoded surrogates through)
        value = _DECODER.decode(body.decode())
    except RecursionError:
        raise JsonBodyError(f"{what} is nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError too
        raise JsonBodyError(f"{what} is not valid JSON: {exc}") from None
    if _deeper_than(MAX_DEPTH, body, value):
        raise JsonBodyError(f"{what} is nested too deeply (more than {MAX_DEPTH} levels)")
    if has_lone_surrogate(body, value):
        raise JsonBodyError(f"{what} has a lone surrogate (an unpaired \\ud800-\\udfff "
                            "escape) in a string: that is not Unicode text")
    if kind is not None and not isinstance(value, kind):
        raise JsonBodyError(f"{what} must be a JSON {_KINDS.get(kind, kind.__name__)}")
    return value


def has_lone_surrogate(raw: bytes, value: Any) -> bool:
    """Whether ``value``, parsed from the JSON bytes ``raw``, holds a lone surrogate. The
    costly check only runs when ``raw`` has a surrogate escape at all."""
    if not _SURROGATE_ESCAPE.search(raw):
        return False
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def _deeper_than(limit: int, raw: bytes, value: Any) -> bool:
    """Whether ``value`` (parsed from ``raw``) nests more than ``limit`` arrays and objects;
    it is walked, level by level, only when ``raw`` has more brackets than that at all."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    level = [value] if type(value) is list or type(value) is dict else []
    for _ in range(limit):  # level: the arrays and objects inside so many others
        if not level:
            return False
        level = [child for item in level
                 for child in (item.values() if type(item) is dict else item)
                 if type(child) is list or type(child) is dict]
    return bool(level)


def is_unicode_text(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (it holds no lone surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
