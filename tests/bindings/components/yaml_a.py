"""Binding components built the way the sidecar builds them: from YAML, through the registry."""

from __future__ import annotations

import json

from tether.platform.bindings.binding import Binding, OutputBinding
from tether.platform.bindings.registry import BINDING_TYPES
from tether.platform.components import Component, Templates, load_documents


def component(type_: str, name: str = "b", **metadata: str) -> Component:
    """A Component from YAML text: ``spec.type`` and the metadata as name/value pairs."""
    items = "".join(f"  - name: {key}\n    value: {json.dumps(value)}\n"
                    for key, value in metadata.items())
    text = (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n"
            f"spec:\n  type: {type_}\n  version: v1\n  metadata:\n{items}")
    (loaded,) = load_documents(text, "binding.yaml", Templates("app"))
    assert isinstance(loaded, Component)
    return loaded


def build(type_: str, name: str = "b", **metadata: str) -> Binding:
    return BINDING_TYPES.build(component(type_, name, **metadata))


def output(type_: str, name: str = "b", **metadata: str) -> OutputBinding:
    built = build(type_, name, **metadata).output
    assert built is not None
    return built
