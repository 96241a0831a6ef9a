"""A checked query plan (:mod:`.query`) compiled to one SQLite SELECT over json1.

JSON rows are the TEXT ones (binary values are BLOBs), and the CASE guards keep json1 away
from BLOBs, which it refuses. A comparison also checks the JSON type, so ``true`` never
equals ``1`` and ``"1"`` never equals ``1``, as in the memory store.
"""

from __future__ import annotations

from typing import Any

from tether.platform.state.stores.query import Plan, Scalar, render_filter

_NUMBER = "('integer', 'real')"
_OPS = {"EQ": "=", "NEQ": "!=", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}


def json_path(path: tuple[str, ...]) -> str:
    # segments never contain '"' (the plan refuses them), so quoting each is safe
    return "$" + "".join(f'."{part}"' for part in path)


def _type(path: tuple[str, ...], params: list[Any]) -> str:
    params.append(json_path(path))
    return "(CASE WHEN typeof(value) = 'text' THEN json_type(value, ?) END)"


def _extract(path: tuple[str, ...], params: list[Any]) -> str:
    params.append(json_path(path))
    return "(CASE WHEN typeof(value) = 'text' THEN json_extract(value, ?) END)"


def _comparison(op: str, path: tuple[str, ...], value: Scalar, params: list[Any]) -> str:
    if value is None or isinstance(value, bool):
        if op == "EQ":
            wanted = "null" if value is None else "true" if value else "false"
        elif op == "NEQ" and value is not None:
            wanted = "false" if value else "true"  # the other boolean
        else:
            return "0"  # null != x is false for every x; true/false/null have no order
        return f"{_type(path, params)} = '{wanted}'"
    kinds = "('text')" if isinstance(value, str) else _NUMBER
    type_sql = _type(path, params)
    value_sql = _extract(path, params)
    params.append(value)
    return f"({type_sql} IN {kinds} AND {value_sql} {_OPS[op]} ?)"


def compile_query(table: str, plan: Plan, now: float) -> tuple[str, list[Any]]:
    """SELECT key, value, etag, expires_at for one page (plus one row to detect the next)."""
    params: list[Any] = [now, len(plan.key_prefix), plan.key_prefix]
    where = [
        "typeof(value) = 'text'",
        "(expires_at IS NULL OR expires_at > ?)",
        "substr(key, 1, ?) = ?",
    ]
    if plan.filter is not None:
        where.append(render_filter(plan.filter, params, _comparison))
    order = []
    for key in plan.sort:
        value_sql = _extract(key.path, params)
        # items without the key sort last in either direction
        order.append(f"{value_sql} IS NULL, {value_sql} {'DESC' if key.descending else 'ASC'}")
        params.append(json_path(key.path))
    order.append("key")
    sql = (
        f"SELECT key, value, etag, expires_at FROM {table} WHERE {' AND '.join(where)}"
        f" ORDER BY {', '.join(order)} LIMIT ? OFFSET ?"
    )
    params += [-1 if plan.limit is None else plan.limit + 1, plan.offset]
    return sql, params
