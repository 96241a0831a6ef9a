"""A checked query plan (:mod:`.query`) compiled to one PostgreSQL SELECT over jsonb.

Only JSON rows (``value_json``) take part. Comparisons check the JSON type as the memory
store does; strings compare and sort by code point (``COLLATE "C"``), whatever the
database's collation.
"""

from __future__ import annotations

import json
from typing import Any

from tether.platform.state.stores.query import Plan, Scalar, render_filter

_DOC = "(value_json::jsonb #> %s::text[])"
_OPS = {"EQ": "=", "NEQ": "<>", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}


def _kind(value: Scalar) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


def _comparison(op: str, path: tuple[str, ...], value: Scalar, params: list[Any]) -> str:
    kind = _kind(value)
    if op != "EQ" and (kind == "null" or (kind == "boolean" and op != "NEQ")):
        return "false"  # null != x is false for every x; true/false/null have no order
    params += [list(path), kind]
    typed = f"jsonb_typeof({_DOC}) = %s"
    if op in ("EQ", "NEQ") or kind == "number":
        # jsonb compares numbers numerically and booleans/strings by value
        params += [list(path), json.dumps(value)]
        return f"({typed} AND {_DOC} {_OPS[op]} %s::jsonb)"
    params += [list(path), value]
    return f'({typed} AND ({_DOC} #>> \'{{}}\') COLLATE "C" {_OPS[op]} %s)'


def compile_query(table: str, plan: Plan) -> tuple[str, list[Any]]:
    """SELECT key, value, value_json, etag, expires_at for one page (+1 row to detect more)."""
    params: list[Any] = [plan.key_prefix]
    where = ["value_json IS NOT NULL", "(expires_at IS NULL OR expires_at > now())",
             "starts_with(key, %s)"]
    if plan.filter is not None:
        where.append(render_filter(plan.filter, params, _comparison))
    order = []
    for key in plan.sort:
        direction = "DESC" if key.descending else "ASC"
        path = list(key.path)
        kind = f"jsonb_typeof({_DOC})"
        # as the memory store: values that can't be ordered (missing, null, objects) last,
        # then booleans < numbers < strings (reversed by DESC), then the value itself
        order += [
            f"coalesce({kind} NOT IN ('boolean', 'number', 'string'), true)",
            f"CASE {kind} WHEN 'boolean' THEN 0 WHEN 'number' THEN 1 ELSE 2 END {direction}",
            f"CASE {kind} WHEN 'number' THEN ({_DOC} #>> '{{}}')::numeric"
            f" WHEN 'boolean' THEN ({_DOC} #>> '{{}}')::boolean::int END {direction}",
            f"CASE {kind} WHEN 'string' THEN {_DOC} #>> '{{}}' END COLLATE \"C\" {direction}",
        ]
        params += [path] * 7  # the placeholders in the four terms above
    order.append('key COLLATE "C"')
    statement = (
        f"SELECT key, value, value_json::text, etag, expires_at FROM {table}"
        f" WHERE {' AND '.join(where)} ORDER BY {', '.join(order)} LIMIT %s OFFSET %s"
    )
    params += [None if plan.limit is None else plan.limit + 1, plan.offset]
    return statement, params
