"""Dapr's state query language, parsed once and shared by the stores that support it.

A filter is a tree of single-key objects: ``{"EQ": {"a.b": 1}}``, ``{"IN": {"a": [1, 2]}}``,
``{"AND": [...]}``, ``{"OR": [...]}`` (plus NEQ, GT, GTE, LT, LTE, as Dapr's docs list). A
key is a dot path into the JSON value. Operands are JSON scalars every store can compare
(strings without NUL, finite numbers, integers within 64 bits, booleans, null; anything else
is InvalidQueryError); a comparison between different JSON types is false (so ``true``
never equals ``1``). Pages are offsets: the token is the offset of the next page as a
decimal string.

The memory store evaluates :func:`matches` in Python; the SQL stores compile the same tree.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tether.platform.state.store import InvalidQueryError, Query, StateItem
from tether.platform.state.stores.common import is_key, json_text

COMPARISONS = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE")
MAX_LIMIT = 10_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

Scalar = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Condition:
    op: str  # one of COMPARISONS, or IN
    path: tuple[str, ...]
    #: one operand, or several for IN
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Group:
    op: str  # AND or OR
    children: tuple[Node, ...]


Node = Condition | Group
#: renders one comparison in a SQL dialect, appending its parameters
Comparison = Callable[[str, tuple[str, ...], Scalar, list[Any]], str]


def render_filter(node: Node, params: list[Any], comparison: Comparison) -> str:
    """A filter as a SQL condition: IN becomes ORed EQs, groups nest in parentheses."""
    if isinstance(node, Condition):
        if node.op == "IN":
            return "(" + " OR ".join(comparison("EQ", node.path, v, params)
                                     for v in node.values) + ")"
        return comparison(node.op, node.path, node.values[0], params)
    joiner = " AND " if node.op == "AND" else " OR "
    return "(" + joiner.join(render_filter(child, params, comparison)
                             for child in node.children) + ")"


@dataclass(frozen=True, slots=True)
class SortKey:
    path: tuple[str, ...]
    descending: bool


@dataclass(frozen=True, slots=True)
class Plan:
    """A checked query: what every store runs."""

    filter: Node | None
    sort: tuple[SortKey, ...]
    offset: int
    limit: int | None
    key_prefix: str


def plan(query: Query) -> Plan:
    """Check a query; InvalidQueryError names the first problem."""
    node = None if not query.filter else _node(query.filter, "filter")
    if isinstance(query.sort, str | bytes) or not isinstance(query.sort, Sequence):
        raise InvalidQueryError("sort must be an array of {key, order}")
    sort = tuple(_sort_key(entry, i) for i, entry in enumerate(query.sort))
    limit = query.limit
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                              or limit < 0 or limit > MAX_LIMIT):
        raise InvalidQueryError(f"page.limit must be a number from 0 to {MAX_LIMIT}")
    return Plan(node, sort, _offset(query.token), limit or None, query.key_prefix)


def _offset(token: str | None) -> int:
    if token is None or token == "":
        return 0
    if not (token.isascii() and token.isdigit()) or len(token) > 12:
        raise InvalidQueryError(f"page.token {token!r} is not a token this store returned")
    return int(token)


def _path(key: object, where: str) -> tuple[str, ...]:
    if not isinstance(key, str) or not key or not is_key(key):
        raise InvalidQueryError(f"{where}: the key must be a non-empty string (Unicode text "
                                "without NUL)")
    parts = tuple(key.split("."))
    if any(not part or '"' in part for part in parts):
        raise InvalidQueryError(f"{where}: {key!r} is not a dot path")
    return parts


def _scalar(value: object, where: str) -> Scalar:
    """A JSON scalar every store can compare: a string of Unicode text without NUL, a
    finite number (an integer within SQLite's 64 bits), a boolean or null."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and is_key(value):
        return value
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise InvalidQueryError(f"{where}: operands must be JSON strings (Unicode text without "
                            f"NUL), finite numbers (integers from {_INT64_MIN} to "
                            f"{_INT64_MAX}), booleans or null, not {value!r}")


def _node(raw: object, where: str) -> Node:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise InvalidQueryError(f"{where}: each filter must be an object with one operator")
    op, operand = next(iter(raw.items()))
    if op in ("AND", "OR"):
        if isinstance(operand, str | bytes) or not isinstance(operand, Sequence) or not operand:
            raise InvalidQueryError(f"{where}.{op}: must be a non-empty array of filters")
        return Group(op, tuple(_node(c, f"{where}.{op}[{i}]") for i, c in enumerate(operand)))
    if op in COMPARISONS or op == "IN":
        if not isinstance(operand, Mapping) or len(operand) != 1:
            raise InvalidQueryError(f"{where}.{op}: must be an object with one key")
        key, value = next(iter(operand.items()))
        path = _path(key, f"{where}.{op}")
        if op == "IN":
            if isinstance(value, str | bytes) or not isinstance(value, Sequence) or not value:
                raise InvalidQueryError(f"{where}.IN.{key}: must be a non-empty array")
            return Condition(op, path, tuple(_scalar(v, f"{where}.IN.{key}") for v in value))
        return Condition(op, path, (_scalar(value, f"{where}.{op}.{key}"),))
    raise InvalidQueryError(f"{where}: unknown operator {op!r}")


def _sort_key(entry: object, index: int) -> SortKey:
    if not isinstance(entry, Mapping):
        raise InvalidQueryError(f"sort[{index}] must be an object with key and order")
    order = str(entry.get("order") or "ASC").upper()
    if order not in ("ASC", "DESC"):
        raise InvalidQueryError(f"sort[{index}].order must be ASC or DESC")
    return SortKey(_path(entry.get("key"), f"sort[{index}]"), order == "DESC")


# --- evaluation in Python (memory store) ---------------------------------------------

_MISSING = object()


def lookup(doc: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if value is None:
        return "null"
    return "other"


def _compare(op: str, found: Any, operand: Scalar) -> bool:
    if found is _MISSING or _kind(found) != _kind(operand):
        return False
    if op == "EQ":
        return bool(found == operand)
    if op == "NEQ":
        return bool(found != operand)
    if _kind(found) not in ("number", "string"):
        return False
    if op == "GT":
        return bool(found > operand)
    if op == "GTE":
        return bool(found >= operand)
    if op == "LT":
        return bool(found < operand)
    return bool(found <= operand)


def matches(node: Node | None, doc: Any) -> bool:
    if node is None:
        return True
    if isinstance(node, Group):
        results = (matches(child, doc) for child in node.children)
        return all(results) if node.op == "AND" else any(results)
    found = lookup(doc, node.path)
    if node.op == "IN":
        return any(_compare("EQ", found, v) for v in node.values)
    return _compare(node.op, found, node.values[0])


def run_in_memory(p: Plan, items: Sequence[StateItem]) -> tuple[list[StateItem], str | None]:
    """Filter, sort and page items (already live and prefix-filtered) in Python."""
    docs: list[tuple[StateItem, Any]] = []
    for item in items:
        text = json_text(item.value)
        if text is None:
            continue  # a value that is not JSON never matches a query (as in the SQL stores)
        doc = json.loads(text)
        if matches(p.filter, doc):
            docs.append((item, doc))
    docs.sort(key=lambda pair: pair[0].key)
    for key in reversed(p.sort):  # stable sorts, last key first
        present = [d for d in docs if _sortable(lookup(d[1], key.path))]
        absent = [d for d in docs if not _sortable(lookup(d[1], key.path))]
        present.sort(key=lambda d: _sort_value(lookup(d[1], key.path)), reverse=key.descending)
        docs = present + absent  # items without the key sort last either way
    return page([item for item, _ in docs], p)


def _sortable(value: Any) -> bool:
    return _kind(value) in ("number", "string", "bool")


def _sort_value(value: Any) -> tuple[int, Any]:
    rank = {"bool": 0, "number": 1, "string": 2}[_kind(value)]
    return rank, value


def cut(rows: Sequence[StateItem], p: Plan) -> tuple[list[StateItem], str | None]:
    """The page from rows a store fetched from ``p.offset`` with a limit of ``p.limit + 1``
    (the extra row only tells whether there is a next page)."""
    if p.limit is None or len(rows) <= p.limit:
        return list(rows), None
    return list(rows[:p.limit]), str(p.offset + p.limit)


def page(rows: Sequence[StateItem], p: Plan) -> tuple[list[StateItem], str | None]:
    """Cut one page from the full ordered result."""
    end = None if p.limit is None else p.offset + p.limit
    chosen = list(rows[p.offset:end])
    more = end is not None and len(rows) > end
    return chosen, (str(end) if more else None)
