"""Tether's wire maps against the cloudevents SDK 2.x: what Tether writes the SDK reads to the
same attributes and data, and what the SDK writes Tether reads to the same event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SDKCloudEvent

from tests.platform.test_event import T0, TRACE, sample_events
from tether.brokers.kafka.codec import from_kafka, to_kafka
from tether.platform.events import CloudEvent, InvalidCloudEventError, format_time
from tether.platform.events.http import from_http, to_http_binary, to_http_structured
from tether.platform.events.json_format import from_json, to_json
from tether.platform.events.sdk import from_sdk, to_sdk

SAMPLES = sample_events()
FORMAT = JSONFormat()

# The SDK's binary modes (HTTP and Kafka) write data with JSONFormat.write_data, which sends a
# str under a JSON content type unquoted and any JSON value but a dict as Python's str() of it
# (a list becomes "[1, 2.5, 'three']"): these samples cannot come from the SDK in binary mode.
SDK_BINARY_CANNOT_WRITE = {"json-array-vendor-type", "json-string"}


def view(attributes: dict[str, Any], data: Any) -> tuple[dict[str, Any], Any]:
    """Attributes with time as an RFC 3339 string, so both sides compare as values."""
    attributes = dict(attributes)
    if isinstance(attributes.get("time"), datetime):
        attributes["time"] = format_time(attributes["time"])
    return attributes, data


def sdk_view(event: BaseCloudEvent) -> tuple[dict[str, Any], Any]:
    return view(event.get_attributes(), event.get_data())


def tether_view(event: CloudEvent) -> tuple[dict[str, Any], Any]:
    return view(event.attributes(), event.data)


def unstamp(decoded: BaseCloudEvent, event: CloudEvent) -> BaseCloudEvent:
    """The SDK's decoders build events with its constructor, which stamps the current time on
    an event without one; drop it so the rest can be compared."""
    if event.time is None:
        assert isinstance(decoded.get_time(), datetime)  # the SDK did stamp it
        decoded.get_attributes().pop("time")
    return decoded


def expected_sdk_data(event: CloudEvent) -> Any:
    """What the SDK's JSON read_data gives for a binary-mode body: the FIELD-NOTES pitfall,
    binary payloads that are valid UTF-8 come back as str."""
    if isinstance(event.data, bytes):
        try:
            return event.data.decode()
        except UnicodeDecodeError:
            return event.data
    return event.data


# --- conversion ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLES)
def test_to_sdk_and_back(name: str) -> None:
    event = SAMPLES[name]
    converted = to_sdk(event)
    assert isinstance(converted, SDKCloudEvent)
    assert sdk_view(converted) == tether_view(event)
    assert from_sdk(converted) == event


def test_to_sdk_does_not_stamp_a_time() -> None:
    assert to_sdk(CloudEvent(type="t", source="s")).get_time() is None


def test_from_sdk_canonicalizes_data() -> None:
    # the SDK hands out UTF-8-valid binary payloads as str; the content type decides here
    sdk_event = SDKCloudEvent(
        {"type": "t", "source": "s", "datacontenttype": "application/avro"}, "ascii bytes",
    )
    assert from_sdk(sdk_event).data == b"ascii bytes"
    raw_json = SDKCloudEvent(
        {"type": "t", "source": "s", "datacontenttype": "application/json"}, b'{"a":1}',
    )
    assert from_sdk(raw_json).data == {"a": 1}
    native = SDKCloudEvent(
        {"type": "t", "source": "s", "time": T0, "attempt": 3, **TRACE}, {"a": 1},
    )
    converted = from_sdk(native)
    assert converted.extensions == {"attempt": "3", **TRACE}
    assert (converted.time, converted.id) == (T0, native.get_id())


def test_from_sdk_rejects_other_spec_versions() -> None:
    from cloudevents.core.v03.event import CloudEvent as SDKCloudEventV03

    with pytest.raises(InvalidCloudEventError, match="specversion"):
        from_sdk(SDKCloudEventV03({"type": "t", "source": "s"}))


# --- Tether writes, the SDK reads -------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLES)
def test_sdk_reads_tether_kafka_binary(name: str) -> None:
    event = SAMPLES[name]
    key, value, headers = to_kafka(event)
    message = sdk_kafka.KafkaMessage(
        headers=dict(headers), key=key, value=value if value is not None else b"",
    )
    decoded = unstamp(sdk_kafka.from_binary(message, FORMAT), event)
    assert sdk_view(decoded) == view(event.attributes(), expected_sdk_data(event))
    assert from_sdk(decoded) == event


@pytest.mark.parametrize("name", SAMPLES)
def test_sdk_reads_tether_http_binary(name: str) -> None:
    event = SAMPLES[name]
    headers, body = to_http_binary(event)
    message = sdk_http.HTTPMessage(headers=headers, body=body)
    decoded = unstamp(sdk_http.from_binary(message, FORMAT), event)
    assert sdk_view(decoded) == view(event.attributes(), expected_sdk_data(event))
    assert from_sdk(decoded) == event


@pytest.mark.parametrize("name", SAMPLES)
def test_sdk_reads_tether_structured(name: str) -> None:
    event = SAMPLES[name]
    headers, body = to_http_structured(event)
    message = sdk_http.HTTPMessage(headers=headers, body=body)
    decoded = unstamp(sdk_http.from_http(message, FORMAT), event)
    assert sdk_view(decoded) == tether_view(event)  # data_base64 keeps bytes as bytes
    assert from_sdk(decoded) == event
    assert sdk_view(unstamp(FORMAT.read(None, to_json(event)), event)) == tether_view(event)


# --- the SDK writes, Tether reads -------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(set(SAMPLES) - SDK_BINARY_CANNOT_WRITE))
def test_tether_reads_sdk_http_binary(name: str) -> None:
    event = SAMPLES[name]
    message = sdk_http.to_binary(to_sdk(event), FORMAT)
    assert from_http(message.headers, message.body) == event


@pytest.mark.parametrize("name", SAMPLES)
def test_tether_reads_sdk_structured(name: str) -> None:
    event = SAMPLES[name]
    message = sdk_http.to_structured(to_sdk(event), FORMAT)
    assert from_http(message.headers, message.body) == event
    assert from_json(FORMAT.write(to_sdk(event))) == event


# The SDK writes an empty value for an event without data; see test_tether_reads_sdk_kafka_
# event_without_data for the JSON case.
SDK_KAFKA_EMPTY_VALUE = {"no-data", "no-data-json-type"}


@pytest.mark.parametrize(
    "name", sorted(set(SAMPLES) - SDK_BINARY_CANNOT_WRITE - SDK_KAFKA_EMPTY_VALUE)
)
def test_tether_reads_sdk_kafka_binary(name: str) -> None:
    event = SAMPLES[name]
    message = sdk_kafka.to_binary(to_sdk(event), FORMAT)
    assert message.key == event.partitionkey  # both take the key from partitionkey
    assert from_kafka(message.value, [(k, v) for k, v in message.headers.items()]) == event


def test_tether_reads_sdk_kafka_event_without_data() -> None:
    # The SDK writes value b"" for an event without data. Under a JSON content type an empty
    # value can only mean "no data"; Tether's decode_data must not reject it as bad JSON.
    event = CloudEvent(type="t", source="s", datacontenttype="application/json", extensions=TRACE)
    message = sdk_kafka.to_binary(to_sdk(event), FORMAT)
    assert message.value == b""
    assert from_kafka(message.value, list(message.headers.items())) == event
