"""Binding events on the broker: an input source's message, and an async output call.

Both carry their payload as binary data (byte for byte on every backend) and what Dapr
passes beside it in string extensions (CloudEvents extension values are strings on every
transport): the binding's name, the content type, the metadata as a JSON object, and for an
output call its operation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from tether.platform.bindings.binding import BindingRequest, InputMessage
from tether.platform.events import CloudEvent
from tether.platform.events.event import BINARY_CONTENT_TYPE

INPUT_TYPE = "io.tether.binding.input"
OUTPUT_TYPE = "io.tether.binding.output"
TOPIC_PREFIX = "tether.binding."

# extension names (lower-case letters and digits, as CloudEvents requires)
NAME = "bindingname"
METADATA = "bindingmetadata"
CONTENT_TYPE = "bindingcontenttype"
OPERATION = "bindingoperation"
PARTITION_KEY = "partitionkey"  # the brokers' ordering key


def input_topic(name: str) -> str:
    """The Tether topic input binding ``name`` feeds (consumed in group = app id)."""
    return TOPIC_PREFIX + name


def input_dead_letter_topic(name: str) -> str:
    return input_topic(name) + ".deadletter"


def output_topic(app_id: str) -> str:
    """The topic of ``app_id``'s async output binding calls."""
    return f"{TOPIC_PREFIX}out.{app_id}"


def output_dead_letter_topic(app_id: str) -> str:
    return output_topic(app_id) + ".deadletter"


def lease_topic(app_id: str, binding: str) -> str:
    """Where the lease of ``app_id``'s exclusive input source ``binding`` is held (consumed
    in a group of the same name: one group per lease, so that one lease's members never
    see another's baton)."""
    return f"{TOPIC_PREFIX}lease.{app_id}.{binding}"


def _metadata(event: CloudEvent) -> dict[str, str]:
    raw = event.extensions.get(METADATA)
    if not raw:
        return {}
    value = json.loads(raw)
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ValueError(f"{METADATA} is not a JSON object of strings")
    return value


def _data(event: CloudEvent) -> bytes:
    data = event.data
    if data is None:
        return b""
    if not isinstance(data, bytes):
        raise ValueError("binding event data is not binary")
    return data


def _extensions(name: str, metadata: Mapping[str, str], key: str | None,
                content_type: str | None) -> dict[str, str]:
    extensions = {NAME: name, METADATA: json.dumps(dict(metadata), separators=(",", ":"))}
    if content_type:
        extensions[CONTENT_TYPE] = content_type
    if key:
        extensions[PARTITION_KEY] = key
    return extensions


def input_event(app_id: str, binding: str, message: InputMessage) -> CloudEvent:
    return CloudEvent(
        type=INPUT_TYPE,
        source=f"{app_id}/bindings/{binding}",
        data=message.data,
        datacontenttype=BINARY_CONTENT_TYPE,
        extensions=_extensions(binding, message.metadata, message.key, message.content_type),
    )


def read_input(event: CloudEvent) -> InputMessage:
    """The message an input event carries; ValueError when the event is not one."""
    return InputMessage(
        data=_data(event),
        metadata=_metadata(event),
        key=event.extensions.get(PARTITION_KEY),
        content_type=event.extensions.get(CONTENT_TYPE),
    )


@dataclass(frozen=True, slots=True)
class OutputCall:
    """An async output binding call as it travels on the broker."""

    binding: str
    request: BindingRequest

    def to_event(self, app_id: str, key: str | None = None,
                 trace: Mapping[str, str] | None = None) -> CloudEvent:
        """``trace``: the caller's W3C context, the parent of the call's span when it runs."""
        extensions = _extensions(self.binding, self.request.metadata, key, None)
        extensions[OPERATION] = self.request.operation
        if trace:
            extensions.update(trace)
        return CloudEvent(
            type=OUTPUT_TYPE,
            source=f"{app_id}/bindings/{self.binding}",
            data=self.request.data,
            datacontenttype=BINARY_CONTENT_TYPE,
            extensions=extensions,
        )

    @classmethod
    def from_event(cls, event: CloudEvent) -> OutputCall:
        """ValueError when ``event`` is not an output call."""
        binding = event.extensions.get(NAME)
        operation = event.extensions.get(OPERATION)
        if event.type != OUTPUT_TYPE or not binding or not operation:
            raise ValueError(f"event {event.id} is not an output binding call")
        request = BindingRequest(operation=operation, data=_data(event),
                                 metadata=_metadata(event))
        return cls(binding, request)
