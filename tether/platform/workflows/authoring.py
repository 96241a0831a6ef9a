"""Registering workflows and activities by name, with Dapr's decorators and names."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

F = TypeVar("F", bound=Callable[..., Any])

# the attribute Dapr's SDK uses for a registered name, so its alternate_name works here too
_NAME_ATTR = "_dapr_alternate_name"


def alternate_name(name: str) -> Callable[[F], F]:
    """Give a workflow or activity function a registration name other than its __name__."""

    def decorate(fn: F) -> F:
        setattr(fn, _NAME_ATTR, name)
        return fn

    return decorate


def name_of(fn_or_name: Callable[..., Any] | str) -> str:
    """The name a workflow or activity is called by: a string, or a function's registered name."""
    if isinstance(fn_or_name, str):
        return fn_or_name
    named = getattr(fn_or_name, _NAME_ATTR, None)
    if isinstance(named, str):
        return named
    name = getattr(fn_or_name, "__name__", None)
    if not isinstance(name, str):
        raise TypeError(f"expected a function or a name, got {fn_or_name!r}")
    return name


def _takes_input(fn: Callable[..., Any]) -> bool:
    # inspect.signature costs ~16 us, paid on every activity call without the cache
    try:
        return _cached_takes_input(fn)
    except TypeError:  # an unhashable callable
        return _signature_takes_input(fn)


def _signature_takes_input(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins and some callables have no signature
        return True
    positional = [p for p in params if p.kind in (
        inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    varargs = any(p.kind == inspect.Parameter.VAR_POSITIONAL for p in params)
    return varargs or len(positional) >= 2


_cached_takes_input = functools.lru_cache(maxsize=4096)(_signature_takes_input)


def invoke(fn: Callable[..., Any], ctx: Any, data: Any) -> Any:
    """Call a workflow or activity as `fn(ctx, input)`, or `fn(ctx)` when it takes no input
    (Dapr's samples write both)."""
    return fn(ctx, data) if _takes_input(fn) else fn(ctx)


class WorkflowRegistry:
    """Workflows and activities by name. WorkflowRuntime (the broker runtime) extends this."""

    def __init__(self) -> None:
        self.workflows: dict[str, Callable[..., Any]] = {}
        self.activities: dict[str, Callable[..., Any]] = {}

    def register_workflow(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        self._register(self.workflows, "workflow", fn, name)

    def register_activity(self, fn: Callable[..., Any], *, name: str | None = None) -> None:
        self._register(self.activities, "activity", fn, name)

    @overload
    def workflow(self, __fn: F) -> F: ...
    @overload
    def workflow(self, __fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...

    def workflow(self, __fn: Any = None, *, name: str | None = None) -> Any:
        """`@wfr.workflow` or `@wfr.workflow(name="...")`."""
        return self._decorator(self.register_workflow, __fn, name)

    @overload
    def activity(self, __fn: F) -> F: ...
    @overload
    def activity(self, __fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...

    def activity(self, __fn: Any = None, *, name: str | None = None) -> Any:
        """`@wfr.activity` or `@wfr.activity(name="...")`."""
        return self._decorator(self.register_activity, __fn, name)

    @overload
    def async_workflow(self, __fn: F) -> F: ...
    @overload
    def async_workflow(self, __fn: None = None, *,
                       name: str | None = None) -> Callable[[F], F]: ...

    def async_workflow(self, __fn: Any = None, *, name: str | None = None) -> Any:
        """`@wfr.async_workflow(name=...)`: an `async def` workflow that awaits tasks."""
        return self._decorator(self.register_workflow, __fn, name)

    def get_workflow(self, name: str) -> Callable[..., Any] | None:
        return self.workflows.get(name)

    def get_activity(self, name: str) -> Callable[..., Any] | None:
        return self.activities.get(name)

    @staticmethod
    def _decorator(register: Callable[..., None], fn: Any, name: str | None) -> Any:
        def decorate(f: F) -> F:
            register(f, name=name)
            return f

        return decorate(fn) if fn is not None else decorate

    @staticmethod
    def _register(table: dict[str, Callable[..., Any]], kind: str, fn: Callable[..., Any],
                  name: str | None) -> None:
        if not callable(fn):
            raise TypeError(f"a {kind} must be a function, got {fn!r}")
        key = name or name_of(fn)
        if key in table and table[key] is not fn:
            raise ValueError(f"a different {kind} is already registered as {key!r}")
        table[key] = fn
        if name:  # so that call_activity(fn) / call_child_workflow(fn) find the name
            setattr(fn, _NAME_ATTR, name)
