"""Dapr topic routing: ordered CEL rules, first match wins, then the default path.

Semantics follow ``findMatchingRoute``/``matchRoutingRule`` in Dapr's
``pkg/runtime/subscription/subscription.go`` (see docs/routing.md):

- rules are tried in order and the first whose expression is true gives the path; a rule
  with no (or an empty) expression matches every event; ``default`` is such a rule, last;
- no rule matches: :meth:`RouteTable.path_for` returns None, and the caller acks the event
  and skips it (Dapr also hands it to the dead-letter topic when one is configured);
- an expression that fails to evaluate (missing key, no such overload...) or gives a
  non-bool: Dapr stops matching and fails the delivery (dead-letter topic, else retry).
  That is ``on_error="raise"``: :class:`RouteEvaluationError`. ``on_error="no_match"``
  instead logs it at debug level and tries the next rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from cel_expr_python import cel

from tether.platform.errors import ConfigError
from tether.platform.events.event import CloudEvent
from tether.platform.pubsub.routing.activation import activation
from tether.platform.pubsub.routing.references import ROOT, needs_of

log = logging.getLogger(__name__)

# Dapr declares ``event`` as dyn (pkg/expr/expr.go) and uses only CEL's standard library
_ENV = cel.NewEnv(variables={ROOT: cel.Type.DYN})
_BOOL_OR_DYN = (cel.Type.BOOL, cel.Type.DYN)

OnError = Literal["raise", "no_match"]


class RoutingError(ConfigError):
    """A routing table that cannot be loaded (bad expression or path)."""


class RouteEvaluationError(RoutingError):
    """A match expression failed on one event (raised only with ``on_error="raise"``)."""

    def __init__(self, expression: str, event_id: str, reason: str) -> None:
        super().__init__(f"match expression {expression!r} failed on event {event_id!r}: {reason}")
        self.expression = expression
        self.event_id = event_id
        self.reason = reason


class RuleLike(Protocol):
    """Anything with a match and a path: :class:`Route`, or a components ``RouteRule``."""

    @property
    def match(self) -> str | None: ...

    @property
    def path(self) -> str: ...


@dataclass(frozen=True, slots=True)
class Route:
    """One rule: ``match`` is a CEL expression over ``event``; None or "" matches all."""

    match: str | None
    path: str


@dataclass(frozen=True, slots=True)
class _Compiled:
    expression: str
    program: Any  # a cel.Expression; None matches every event
    path: str


class RouteTable:
    """Rules compiled once at load time; :meth:`path_for` picks an event's path."""

    __slots__ = ("_needs", "_on_error", "_rules", "default", "rules")

    def __init__(
        self, rules: Iterable[RuleLike], default: str | None = None, *, on_error: OnError = "raise"
    ) -> None:
        if on_error not in ("raise", "no_match"):
            raise RoutingError(f"on_error must be 'raise' or 'no_match', not {on_error!r}")
        self.rules = tuple(Route(rule.match, rule.path) for rule in rules)
        self.default = default
        self._on_error = on_error
        compiled = [_compile(rule) for rule in self.rules]
        if default is not None:
            compiled.append(_Compiled("", None, _check_path(default, "default")))
        # rules after a catch-all can never be reached: drop them from the hot loop
        for i, rule in enumerate(compiled):
            if rule.program is None:
                del compiled[i + 1 :]
                break
        self._rules = tuple(compiled)
        self._needs = needs_of(r.expression for r in compiled if r.program is not None)

    @classmethod
    def compile(
        cls, rules: Iterable[RuleLike], default: str | None = None, *, on_error: OnError = "raise"
    ) -> RouteTable:
        """Compile ``rules``; raises :class:`RoutingError` naming a bad expression."""
        return cls(rules, default, on_error=on_error)

    def path_for(self, event: CloudEvent) -> str | None:
        """The path of the first matching rule, else None (ack and skip the event)."""
        variables: Any = None
        for rule in self._rules:
            if rule.program is None:
                return rule.path
            try:
                if variables is None:  # built once per event, only if an expression runs
                    variables = _ENV.Activation({ROOT: activation(event, self._needs)})
                value = rule.program.eval(variables)
            except Exception as exc:  # a value CEL cannot hold, say
                self._failed(rule, event, f"{type(exc).__name__}: {exc}")
                continue
            result = value.value()
            if result is True:
                return rule.path
            if result is not False:
                error = value.type() == cel.Type.ERROR
                self._failed(rule, event, result if error else f"result {result!r} is not a bool")
        return None

    def _failed(self, rule: _Compiled, event: CloudEvent, reason: str) -> None:
        if self._on_error == "raise":
            raise RouteEvaluationError(rule.expression, event.id, reason)
        log.debug(
            "match expression %r failed on event %r, counted as no match: %s",
            rule.expression,
            event.id,
            reason,
        )

    def __repr__(self) -> str:
        return f"RouteTable(rules={list(self.rules)!r}, default={self.default!r})"


def _compile(rule: Route) -> _Compiled:
    path = _check_path(rule.path, f"rule {rule.match!r}")
    expression = rule.match or ""
    if not expression.strip():
        return _Compiled("", None, path)
    try:
        program = _ENV.compile(expression)
    except Exception as exc:  # RuntimeError carrying the parser's or checker's message
        reason = str(exc).removeprefix("INVALID_ARGUMENT: ").removesuffix(" [INVALID_ARGUMENT]")
        raise RoutingError(f"invalid match expression {expression!r}: {reason}") from exc
    kind = program.return_type()
    if kind not in _BOOL_OR_DYN:
        raise RoutingError(f"match expression {expression!r} gives {kind.name()}, not a bool")
    return _Compiled(expression, program, path)


def _check_path(path: object, what: str) -> str:
    if not isinstance(path, str) or not path:
        raise RoutingError(f"{what}: path must be a non-empty string, got {path!r}")
    return path


class ValueExpression:
    """A CEL expression over ``event`` that gives a value (an actor id from
    ``event.data.userId``, say), compiled once; :meth:`value_of` gives it as text."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        try:
            self._program = _ENV.compile(expression)
        except Exception as exc:  # RuntimeError carrying the parser's or checker's message
            reason = str(exc).removeprefix("INVALID_ARGUMENT: ").removesuffix(
                " [INVALID_ARGUMENT]")
            raise RoutingError(f"invalid expression {expression!r}: {reason}") from exc
        self._needs = needs_of([expression])

    def value_of(self, event: CloudEvent) -> str:
        """The value as text (a whole number without a fraction); RouteEvaluationError
        when it cannot be had or is empty."""
        try:
            value = self._program.eval(_ENV.Activation({ROOT: activation(event, self._needs)}))
        except Exception as exc:
            raise RouteEvaluationError(self.expression, event.id,
                                       f"{type(exc).__name__}: {exc}") from exc
        if value.type() == cel.Type.ERROR:
            raise RouteEvaluationError(self.expression, event.id, str(value.value()))
        result = value.value()
        if isinstance(result, float) and result.is_integer():
            result = int(result)
        if isinstance(result, bool) or not isinstance(result, str | int | float) \
                or str(result) == "":
            raise RouteEvaluationError(self.expression, event.id,
                                       f"result {result!r} is not a non-empty string or number")
        return str(result)
