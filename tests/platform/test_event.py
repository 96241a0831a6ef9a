"""The CloudEvent type: construction, validation, canonical extensions and data encoding."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from tether.platform.events import (
    CloudEvent,
    InvalidCloudEventError,
    decode_data,
    encode_data,
    format_time,
    parse_time,
)

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def test_defaults() -> None:
    event = CloudEvent(type="com.example.created", source="/orders")
    assert event.specversion == "1.0"
    assert uuid.UUID(event.id)  # a fresh UUID when none is given
    assert event.id != CloudEvent(type="com.example.created", source="/orders").id
    assert event.time is None and event.subject is None and event.dataschema is None
    assert event.data is None and event.datacontenttype is None
    assert event.extensions == {}
    assert event.attributes() == {
        "specversion": "1.0", "id": event.id, "source": "/orders", "type": "com.example.created",
    }


@pytest.mark.parametrize(
    ("data", "content_type"),
    [({"a": 1}, "application/json"), ([1, 2], "application/json"), (3.5, "application/json"),
     ("hello", "text/plain"), (b"\x00\x01", "application/octet-stream")],
)
def test_default_content_type_follows_the_data(data: object, content_type: str) -> None:
    assert CloudEvent(type="t", source="s", data=data).datacontenttype == content_type


def test_every_attribute_is_kept() -> None:
    event = CloudEvent(
        id="42", type="t", source="s", subject="sub", time=T0, datacontenttype="application/xml",
        dataschema="https://example.com/schema", data=b"<x/>",
        extensions={"traceparent": "00-abc-def-01", "tracestate": "k=v", "partitionkey": "p"},
    )
    assert event.attributes() == {
        "specversion": "1.0", "id": "42", "source": "s", "type": "t", "subject": "sub",
        "time": "2024-05-06T07:08:09.123456Z", "datacontenttype": "application/xml",
        "dataschema": "https://example.com/schema", "traceparent": "00-abc-def-01",
        "tracestate": "k=v", "partitionkey": "p",
    }
    assert event.partitionkey == "p"
    assert (event.traceparent, event.tracestate) == ("00-abc-def-01", "k=v")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": "", "source": "s"}, "'type' is required"),
        ({"type": "t", "source": ""}, "'source' is required"),
        ({"type": "t", "source": "s", "id": ""}, "'id' is required"),
        ({"type": "t", "source": "s", "specversion": "0.3"}, "unsupported specversion"),
        ({"type": "t", "source": "s", "time": "yesterday"}, "not an RFC 3339 timestamp"),
        ({"type": "t", "source": "s", "time": "2024-01-01T00:00:00"}, "UTC offset"),
        ({"type": "t", "source": "s", "time": datetime(2024, 1, 1)}, "UTC offset"),
        ({"type": "t", "source": "s", "extensions": {"Upper": "x"}}, "lower-case"),
        ({"type": "t", "source": "s", "extensions": {"with-dash": "x"}}, "lower-case"),
        ({"type": "t", "source": "s", "extensions": {"": "x"}}, "lower-case"),
        ({"type": "t", "source": "s", "extensions": {"data": "x"}}, "not an extension"),
        ({"type": "t", "source": "s", "extensions": {"subject": "x"}}, "not an extension"),
        ({"type": "t", "source": "s", "extensions": {"ratio": 0.5}}, "unsupported extension"),
        ({"type": "t", "source": "s", "extensions": {"nested": {"a": 1}}}, "unsupported"),
    ],
)
def test_invalid_events_are_rejected(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidCloudEventError, match=message):
        CloudEvent(**kwargs)  # type: ignore[arg-type]


def test_invalid_event_error_is_a_value_error() -> None:
    assert issubclass(InvalidCloudEventError, ValueError)


def test_extensions_take_their_canonical_string_form() -> None:
    event = CloudEvent(
        type="t", source="s",
        extensions={"count": 3, "flag": True, "off": False, "at": T0, "gone": None, "text": "x"},
    )
    assert event.extensions == {
        "count": "3", "flag": "true", "off": "false", "at": "2024-05-06T07:08:09.123456Z",
        "text": "x",
    }


def test_time_strings_are_parsed_and_written_back_in_rfc3339() -> None:
    event = CloudEvent(type="t", source="s", time="2024-05-06T07:08:09Z")
    assert event.time == datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    offset = CloudEvent(type="t", source="s", time="2024-05-06T09:08:09+02:00")
    assert offset.time == event.time
    assert offset.attributes()["time"] == "2024-05-06T09:08:09+02:00"
    assert format_time(parse_time("2024-05-06T07:08:09.5Z")) == "2024-05-06T07:08:09.500000Z"
    # producers in Go and Java write nanoseconds; Python keeps microseconds
    assert parse_time("2024-05-06T07:08:09.123456789Z").microsecond == 123456
    tz = timezone(timedelta(hours=-5))
    assert format_time(datetime(2024, 1, 1, tzinfo=tz)) == "2024-01-01T00:00:00-05:00"


def test_with_extensions_copies() -> None:
    event = CloudEvent(type="t", source="s", data={"a": 1}, extensions={"partitionkey": "k"})
    copy = event.with_extensions(deadletterdeliveries=3, partitionkey="k2")
    assert event.extensions == {"partitionkey": "k"}
    assert copy.extensions == {"partitionkey": "k2", "deadletterdeliveries": "3"}
    assert (copy.id, copy.data, copy.type) == (event.id, event.data, event.type)


def test_equality_covers_attributes_and_data() -> None:
    event = CloudEvent(id="1", type="t", source="s", data={"a": 1}, time=T0)
    same = CloudEvent(id="1", type="t", source="s", data={"a": 1}, time=format_time(T0))
    assert event == same and hash(event) == hash(same)
    assert event != CloudEvent(id="1", type="t", source="s", data={"a": 2}, time=T0)
    assert event != CloudEvent(id="1", type="t", source="s", data={"a": 1})
    assert event != CloudEvent(id="1", type="t", source="s", data={"a": 1}, time=T0,
                               extensions={"x": "1"})


@pytest.mark.parametrize(
    ("data", "content_type", "wire"),
    [
        ({"a": [1, "é"]}, "application/json", '{"a":[1,"é"]}'.encode()),
        ({"a": 1}, "application/cloudevents+json; charset=utf-8", b'{"a":1}'),
        ("quoted", "application/json", b'"quoted"'),
        (None, "application/json", None),
        ("héllo", "text/plain", "héllo".encode()),
        (b"\xff\x00", "application/octet-stream", b"\xff\x00"),
        (b"{}", "application/json", b"{}"),  # bytes are already encoded
    ],
)
def test_encode_data(data: object, content_type: str, wire: bytes | None) -> None:
    assert encode_data(data, content_type) == wire


def test_encode_data_refuses_structures_without_a_json_content_type() -> None:
    with pytest.raises(InvalidCloudEventError, match="needs a JSON datacontenttype"):
        encode_data({"a": 1}, "text/plain")


@pytest.mark.parametrize(
    ("wire", "content_type", "data"),
    [
        (b'{"a":1}', "application/json", {"a": 1}),
        (b'{"a":1}', "Application/JSON; charset=utf-8", {"a": 1}),
        (b"[1]", "application/vnd.example+json", [1]),
        (b'{"a":1}', "text/json", {"a": 1}),
        (b"caf\xc3\xa9", "text/plain; charset=utf-8", "café"),
        (b"valid utf-8", "application/octet-stream", b"valid utf-8"),  # binary stays bytes
        (b"valid utf-8", "application/avro", b"valid utf-8"),
        (b"raw", None, b"raw"),
        (None, "application/json", None),
    ],
)
def test_decode_data(wire: bytes | None, content_type: str | None, data: object) -> None:
    assert decode_data(wire, content_type) == data


@pytest.mark.parametrize(
    ("wire", "content_type", "message"),
    [(b"{nope", "application/json", "not valid JSON"),
     (b"\xff", "text/plain", "not valid UTF-8")],
)
def test_decode_data_errors(wire: bytes, content_type: str, message: str) -> None:
    with pytest.raises(InvalidCloudEventError, match=message):
        decode_data(wire, content_type)


# --- sample events shared by the format and binding tests -----------------------------------
TRACE = {
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "tracestate": "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
    "partitionkey": "order-17",
}


def sample_events() -> dict[str, CloudEvent]:
    """One event per case every format and binding must carry unchanged."""
    return {
        "all-attributes-json": CloudEvent(
            id="A234-1234-1234", type="com.example.order.created", source="/orders/eu",
            subject="order/17", time=T0, dataschema="https://example.com/order.json",
            data={"id": 17, "lines": [{"sku": "é-1", "qty": 2}], "paid": True, "note": None},
            extensions={**TRACE, "tenant": "acme", "attempt": 2},
        ),
        "json-array-vendor-type": CloudEvent(
            type="t", source="s", datacontenttype="application/vnd.example+json",
            data=[1, 2.5, "three", {"four": [4]}], time="2024-05-06T09:08:09.5+02:00",
        ),
        "json-string": CloudEvent(
            type="t", source="s", datacontenttype="application/json", data="just a string",
        ),
        "text": CloudEvent(
            type="t", source="s", datacontenttype="text/plain; charset=utf-8",
            data="línea 1\nlínea 2 ✓", extensions=TRACE,
        ),
        "binary": CloudEvent(
            type="t", source="s", datacontenttype="application/octet-stream",
            data=bytes(range(256)), extensions={"partitionkey": "bin"},
        ),
        "binary-valid-utf8": CloudEvent(
            type="t", source="s", datacontenttype="application/avro", data=b'{"looks":"like text"}',
        ),
        "no-data": CloudEvent(type="t", source="s", extensions=TRACE),
        "no-data-json-type": CloudEvent(
            type="t", source="s", datacontenttype="application/json", time=T0,
        ),
        "header-unsafe-values": CloudEvent(
            id="id with spaces", type="com.exämple.ü", source="/path?q=\"x\"&p=100%",
            subject="naïve café ☕", data={"ok": 1},
            extensions={"partitionkey": "clé 1", "comment": "tab\tand ünïcode"},
        ),
    }
