"""Binding components (``bindings.*``) built into :class:`~.binding.Binding` objects.

Each type's code is a module of ``components/`` with ``build(component) -> Binding``,
imported only when an app has a component of that type, after :func:`require_extra` has
checked that its client library is installed. Dapr's common metadata is applied here for
every type: ``direction`` (``input``, ``output`` or ``input, output``) keeps only the sides
it names, and ``route`` is the app path input events are posted to.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence

from tether.platform.bindings.binding import Binding
from tether.platform.blocks import BlockConfigError
from tether.platform.components import Component, metadata
from tether.platform.components.registry import ComponentTypes, require_extra

BLOCK = "bindings"


class BindingConfigError(BlockConfigError):
    """A binding component that cannot be used; the message names it and the field."""


#: spec.type -> (module under components/, pip extra, the modules that extra provides)
_TYPES: Mapping[str, tuple[str, str | None, tuple[str, ...]]] = {
    "bindings.cron": ("cron", None, ()),
    "bindings.http": ("http", None, ()),
    "bindings.localstorage": ("localstorage", None, ()),
    "bindings.redis": ("redis", "redis", ("redis",)),
    "bindings.postgresql": ("postgresql", "postgresql", ("psycopg", "psycopg_pool")),
    "bindings.postgres": ("postgresql", "postgresql", ("psycopg", "psycopg_pool")),
    "bindings.kafka": ("kafka", "kafka", ("aiokafka",)),
    "bindings.rabbitmq": ("rabbitmq", "rabbitmq", ("aio_pika",)),
    "bindings.mqtt3": ("mqtt", "mqtt", ("aiomqtt",)),
    "bindings.mqtt": ("mqtt", "mqtt", ("aiomqtt",)),
    "bindings.aws.s3": ("s3", "s3", ("aiobotocore",)),
    "bindings.azure.blobstorage": ("azure_blob", "azure-blob", ("azure.storage.blob.aio",)),
    "bindings.smtp": ("smtp", "smtp", ("aiosmtplib",)),
}

_DIRECTIONS = {"input", "output"}


def _factory(module: str, extra: str | None,
             modules: tuple[str, ...]) -> Callable[[Component], Binding]:
    def build(component: Component) -> Binding:
        if extra is not None:
            require_extra(extra, *modules)
        code = importlib.import_module(f"tether.platform.bindings.components.{module}")
        built: Binding = code.build(component)
        return _common(component, built)

    return build


def _common(component: Component, built: Binding) -> Binding:
    """Dapr's metadata every binding takes: ``direction`` and ``route``."""
    direction = metadata.text(component, "direction")
    output, input_ = built.output, built.input
    if direction is not None:
        wanted = {part.strip() for part in direction.split(",") if part.strip()}
        if not wanted or not wanted <= _DIRECTIONS:
            raise metadata.MetadataError(
                "direction", f"{direction!r} must be input, output or 'input, output'"
            )
        for side, present in (("input", input_), ("output", output)):
            if side in wanted and present is None:
                raise metadata.MetadataError(
                    "direction", f"{component.type} has no {side} side"
                )
        output = output if "output" in wanted else None
        input_ = input_ if "input" in wanted else None
    route = metadata.text(component, "route") or ""
    if route and not route.startswith("/"):
        route = "/" + route
    return dataclasses.replace(
        built, name=component.name, type=component.type, output=output, input=input_,
        route=route, dead_letter_topic=metadata.text(component, "deadLetterTopic") or "",
        max_concurrency=metadata.integer(component, "maxConcurrency", minimum=1) or 0,
    )


#: component type -> factory
BINDING_TYPES = ComponentTypes(
    BLOCK,
    "binding",
    {type_: _factory(*spec) for type_, spec in _TYPES.items()},
    BindingConfigError,
)


def build_bindings(components: Sequence[Component]) -> dict[str, Binding]:
    """The app's bindings by component name; BindingConfigError names a bad component."""
    return {c.name: BINDING_TYPES.build(c) for c in BINDING_TYPES.of(components)}
