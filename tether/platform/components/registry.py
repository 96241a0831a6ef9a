"""One block's component types and how to build each: the one lookup every block uses.

A block (pub/sub, state, lock, configuration, secrets, ...) declares a
:class:`ComponentTypes` with a factory per ``spec.type``. :meth:`ComponentTypes.build`
refuses an unknown type or version, and turns any :class:`ConfigError` a factory raises
(a :class:`~tether.platform.components.metadata.MetadataError`, usually) into the block's
own error class, prefixed with the component's name and file.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

from tether.platform.components.model import Component
from tether.platform.errors import ConfigError

T = TypeVar("T")
P = ParamSpec("P")


def describe(component: Component, what: str) -> str:
    """``<what> '<name>' (<file>, document <n>)``: how errors name a component."""
    where = f" ({component.source})" if component.source is not None else ""
    return f"{what} {component.name!r}{where}"


def require_extra(extra: str, *modules: str) -> None:
    """Check that ``modules`` import; otherwise a ConfigError naming the pip extra that
    provides them. Factories call it, so a component fails when it is built (at start)
    instead of on first use."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(
                f"needs the {extra} client library, which is not installed: "
                f"pip install 'tether[{extra}]' ({exc})"
            ) from exc


@dataclass(frozen=True)
class ComponentTypes(Generic[P, T]):
    """The component types of one block (``block`` is the type's first segment). A factory
    takes the component and whatever else the block passes to :meth:`build`."""

    block: str
    #: how errors name one of its components: "state store", "lock store", ...
    what: str
    factories: Mapping[str, Callable[Concatenate[Component, P], T]]
    #: the block's error class; every problem with a component is raised as one
    error: type[ConfigError]
    #: the spec.version values accepted (empty: any)
    versions: Sequence[str] = ()
    #: the error for a type the block has no factory for (a subclass of ``error``)
    unknown: type[ConfigError] | None = None

    @property
    def types(self) -> tuple[str, ...]:
        return tuple(self.factories)

    def describe(self, component: Component) -> str:
        return describe(component, self.what)

    def fail(self, component: Component, problem: str) -> ConfigError:
        return self.error(f"{self.describe(component)}: {problem}")

    def build(self, component: Component, *args: P.args, **kwargs: P.kwargs) -> T:
        """The block's object for one component; raises the block's error."""
        factory = self.factories.get(component.type)
        if factory is None:
            error = self.unknown or self.error
            raise error(f"{self.describe(component)}: type {self.unsupported(component.type)}")
        if self.versions and component.version not in self.versions:
            raise self.fail(component, f"version {component.version!r} is not supported "
                                       f"({' or '.join(self.versions)})")
        try:
            return factory(component, *args, **kwargs)
        except ConfigError as exc:
            raise self.fail(component, str(exc)) from exc

    def unsupported(self, type_: str) -> str:
        """Why ``type_`` cannot be built: ``'<type>' is not supported; supported: ...``."""
        return f"{type_!r} is not supported; supported: {', '.join(self.factories)}"

    def of(self, components: Iterable[Component]) -> list[Component]:
        """The components of this block, in order."""
        return [c for c in components if c.block == self.block]


def unsupported_type(type_: str, blocks: Iterable[ComponentTypes[..., Any]]) -> str | None:
    """Why no block of ``blocks`` builds a component of ``type_``; None when one does. A kind
    no block serves at all (``bindings.*``, ``middleware.*``, ...) is named as such."""
    by_block = {types.block: types for types in blocks}
    block = type_.partition(".")[0]
    found = by_block.get(block)
    if found is None:
        kinds = ", ".join(sorted(by_block))
        return (f"{type_!r} is not supported: Tether has no {block} components yet "
                f"(it supports {kinds}; docs/components.md)")
    return None if type_ in found.factories else found.unsupported(type_)
