"""HTTP binding: binary, structured and batch modes in both directions."""

from __future__ import annotations

import json

import pytest

from tests.platform.test_event import sample_events
from tether.platform.events import CloudEvent, InvalidCloudEventError
from tether.platform.events.avro_format import to_avro
from tether.platform.events.http import (
    from_http,
    from_http_batch,
    is_cloudevent,
    to_http_batch,
    to_http_binary,
    to_http_structured,
)

SAMPLES = sample_events()
BINARY_HEADERS = {"ce-specversion": "1.0", "ce-id": "1", "ce-source": "/s", "ce-type": "t"}


@pytest.mark.parametrize("name", SAMPLES)
def test_binary_round_trip(name: str) -> None:
    event = SAMPLES[name]
    headers, body = to_http_binary(event)
    assert from_http(headers, body) == event


@pytest.mark.parametrize("name", SAMPLES)
def test_structured_round_trip(name: str) -> None:
    event = SAMPLES[name]
    headers, body = to_http_structured(event)
    assert headers == {"content-type": "application/cloudevents+json"}
    assert from_http(headers, body) == event


def test_batch_round_trip() -> None:
    events = list(SAMPLES.values())
    headers, body = to_http_batch(events)
    assert headers == {"content-type": "application/cloudevents-batch+json"}
    assert from_http_batch(headers, body) == events
    assert from_http_batch(*to_http_batch([])) == []
    # any single-event mode reads as a batch of one
    event = SAMPLES["text"]
    assert from_http_batch(*to_http_binary(event)) == [event]
    assert from_http_batch(*to_http_structured(event)) == [event]
    with pytest.raises(InvalidCloudEventError, match="from_http_batch"):
        from_http(headers, body)


def test_binary_headers() -> None:
    event = SAMPLES["all-attributes-json"]
    headers, body = to_http_binary(event)
    assert headers == {
        "ce-specversion": "1.0", "ce-id": "A234-1234-1234", "ce-source": "/orders/eu",
        "ce-type": "com.example.order.created", "ce-subject": "order/17",
        "ce-time": "2024-05-06T07:08:09.123456Z",
        "ce-dataschema": "https://example.com/order.json",
        "ce-traceparent": event.traceparent, "ce-tracestate": event.tracestate,
        "ce-partitionkey": "order-17", "ce-tenant": "acme", "ce-attempt": "2",
        "content-type": "application/json",
    }
    assert json.loads(body) == event.data
    assert to_http_binary(SAMPLES["no-data"])[1] == b""


def test_header_values_are_percent_encoded() -> None:
    headers, _ = to_http_binary(SAMPLES["header-unsafe-values"])
    assert headers["ce-id"] == "id%20with%20spaces"
    assert headers["ce-type"] == "com.ex%C3%A4mple.%C3%BC"
    assert headers["ce-source"] == "/path?q=%22x%22&p=100%25"  # printable ASCII stays
    assert headers["ce-subject"] == "na%C3%AFve%20caf%C3%A9%20%E2%98%95"
    assert headers["ce-comment"] == "tab%09and%20%C3%BCn%C3%AFcode"
    for sample in SAMPLES.values():
        assert all(value.isascii() for value in to_http_binary(sample)[0].values())


def test_receiving_is_case_insensitive_and_percent_decodes() -> None:
    headers = [
        ("CE-SpecVersion", "1.0"), ("Ce-Id", "1"), ("CE-SOURCE", "/s"), ("ce-type", "t"),
        ("Ce-Subject", "caf%c3%a9%20%E2%98%95"), ("Ce-PartitionKey", "k"),
        ("Content-Type", "Application/JSON; charset=utf-8"),
    ]
    event = from_http(headers, b'{"a":1}')
    assert event.subject == "café ☕"
    assert event.partitionkey == "k"
    assert event.data == {"a": 1}
    assert event.datacontenttype == "Application/JSON; charset=utf-8"
    structured = from_http(
        {"Content-Type": "application/cloudevents+json; charset=UTF-8",
         "ce-id": "ignored in structured mode"},
        json.dumps({**{k[3:]: v for k, v in BINARY_HEADERS.items()}, "data": 1}).encode(),
    )
    assert structured.id == "1" and structured.data == 1


def test_structured_avro() -> None:
    event = SAMPLES["binary"]
    assert from_http({"content-type": "application/cloudevents+avro"}, to_avro(event)) == event


def test_empty_body_is_no_data() -> None:
    event = from_http({**BINARY_HEADERS, "content-type": "application/json"}, b"")
    assert event.data is None and event.datacontenttype == "application/json"


def test_is_cloudevent() -> None:
    assert is_cloudevent(BINARY_HEADERS)
    assert is_cloudevent({"Content-Type": "application/cloudevents-batch+json"})
    assert not is_cloudevent({"content-type": "application/json"})


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"content-type": "application/json"}, b"{}", "no ce-specversion header"),
        ({k: v for k, v in BINARY_HEADERS.items() if k != "ce-id"}, b"", "'id'"),
        ({k: v for k, v in BINARY_HEADERS.items() if k != "ce-source"}, b"", "'source'"),
        ({k: v for k, v in BINARY_HEADERS.items() if k != "ce-type"}, b"", "'type'"),
        ({**BINARY_HEADERS, "ce-specversion": "0.3"}, b"", "unsupported specversion"),
        ({**BINARY_HEADERS, "ce-time": "2024-13-45T00:00:00Z"}, b"", "RFC 3339"),
        ({**BINARY_HEADERS, "ce-bad_name": "x"}, b"", "lower-case"),
        ({**BINARY_HEADERS, "ce-subject": "%FF%FE"}, b"", "not UTF-8"),
        ({**BINARY_HEADERS, "content-type": "application/json"}, b"{nope", "not valid JSON"),
        ({"content-type": "application/cloudevents+json"}, b"[1]", "JSON object"),
        ({"content-type": "application/cloudevents+xml"}, b"<e/>", "unsupported CloudEvents"),
        ({"content-type": "application/cloudevents+avro"}, b"\xff", "Avro"),
    ],
)
def test_invalid_messages(headers: dict[str, str], body: bytes, message: str) -> None:
    with pytest.raises(InvalidCloudEventError, match=message):
        from_http(headers, body)


def test_invalid_batch_names_the_event() -> None:
    headers = {"content-type": "application/cloudevents-batch+json"}
    body = json.dumps([{k[3:]: v for k, v in BINARY_HEADERS.items()}, {"id": "2"}]).encode()
    with pytest.raises(InvalidCloudEventError, match="batch event 1"):
        from_http_batch(headers, body)


def test_binary_mode_of_a_text_event_keeps_text() -> None:
    event = CloudEvent(type="t", source="s", data="x = 1", datacontenttype="text/x-python")
    headers, body = to_http_binary(event)
    assert (headers["content-type"], body) == ("text/x-python", b"x = 1")
    assert from_http(headers, body).data == "x = 1"
