"""Which parts of ``event`` a set of CEL expressions can read.

Dapr hands CEL its decoded JSON, where every number is a double; Tether's events keep ints,
so the router converts the data it passes (see activation.py). Walking all of the data for
that on every event would cost more than evaluating the rules, so the activation holds only
the fields the expressions name. This module finds them with a small lexer: each
``event.a.b`` chain becomes a path in a :class:`Needs` tree. Anything the lexer is not sure
about (``event`` used as a whole, ``event["x"]``, a method call such as ``event.data.size()``,
an unknown character) makes that value needed whole, so a mistake here can only cost speed,
never change a result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

ROOT = "event"

_DOT = "."
_CALL = "("
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_STRING_PREFIXES = frozenset({"r", "R", "b", "B", "br", "bR", "Br", "BR", "rb", "rB", "Rb", "RB"})
# an unrecognised character: the caller then treats the whole event as needed
_UNKNOWN = "?unknown"


@dataclass(slots=True)
class Needs:
    """A tree of field names; ``whole`` means the value at this node is needed entirely."""

    whole: bool = False
    fields: dict[str, Needs] = field(default_factory=dict)

    def add(self, path: list[str]) -> None:
        node = self
        for name in path:
            if node.whole:
                return
            node = node.fields.setdefault(name, Needs())
        node.whole = True
        node.fields.clear()


def needs_of(expressions: Iterable[str]) -> Needs:
    """The union of the ``event`` fields the expressions may read."""
    needs = Needs()
    for expression in expressions:
        tokens = _tokens(expression)
        if _UNKNOWN in tokens:
            needs.add([])
            continue
        for i, token in enumerate(tokens):
            if token == ROOT:
                needs.add(_chain(tokens, i + 1))
    return needs


def _chain(tokens: list[str], i: int) -> list[str]:
    """The field names selected after ``event`` at tokens[i:]; a name followed by ``(`` is a
    method call on the value before it, which is then needed whole."""
    path: list[str] = []
    while (
        i + 1 < len(tokens)
        and tokens[i] == _DOT
        and _is_identifier(tokens[i + 1])
        and not (i + 2 < len(tokens) and tokens[i + 2] == _CALL)
    ):
        path.append(tokens[i + 1])
        i += 2
    return path


def _is_identifier(token: str) -> bool:
    return token[0] in _WORD_CHARS and not token[0].isdigit()


def _tokens(text: str) -> list[str]:
    """Words, dots, parentheses and other punctuation; string literals and comments dropped."""
    tokens: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in _WORD_CHARS:
            j = i
            while j < n and text[j] in _WORD_CHARS:
                j += 1
            word = text[i:j]
            if j < n and text[j] in "'\"" and word in _STRING_PREFIXES:
                i = _skip_string(text, j, raw="r" in word.lower())
            else:
                tokens.append(word)
                i = j
        elif c in "'\"":
            i = _skip_string(text, i, raw=False)
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end + 1
        elif c in ".()[]{},:?!<>=&|+-*/%":
            tokens.append(c)
            i += 1
        else:
            return [_UNKNOWN]
    return tokens


def _skip_string(text: str, start: int, *, raw: bool) -> int:
    """Index just past the string literal opening at ``start`` (single or triple quoted)."""
    quote = text[start] * 3 if text.startswith(text[start] * 3, start) else text[start]
    i, n = start + len(quote), len(text)
    while i < n:
        if not raw and text[i] == "\\":
            i += 2
        elif text.startswith(quote, i):
            return i + len(quote)
        else:
            i += 1
    return n  # unterminated: the CEL parser rejects it before this matters
