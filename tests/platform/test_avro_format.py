"""The CloudEvents Avro format: round trips, what goes on the wire, other producers' data
branches, and invalid input."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest

from tests.platform.test_event import sample_events
from tether.platform.events import InvalidCloudEventError
from tether.platform.events.avro_format import from_avro, to_avro
from tether.schemas import CLOUDEVENT, load_schema

SAMPLES = sample_events()
REQUIRED = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}


def write(record: dict[str, Any]) -> bytes:
    """Encode like any other producer of the format would, with the spec's schema."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, load_schema(CLOUDEVENT), record)
    return buffer.getvalue()


def read(payload: bytes) -> dict[str, Any]:
    record = fastavro.schemaless_reader(io.BytesIO(payload), load_schema(CLOUDEVENT))
    assert isinstance(record, dict)
    return record


@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip(name: str) -> None:
    event = SAMPLES[name]
    assert from_avro(to_avro(event)) == event


def test_wire_is_the_spec_record() -> None:
    record = read(to_avro(SAMPLES["all-attributes-json"]))
    assert record["attribute"] == SAMPLES["all-attributes-json"].attributes()
    assert record["data"] == SAMPLES["all-attributes-json"].data_bytes()  # JSON as its bytes
    assert read(to_avro(SAMPLES["text"]))["data"] == SAMPLES["text"].data  # text as string
    assert read(to_avro(SAMPLES["binary"]))["data"] == bytes(range(256))
    assert read(to_avro(SAMPLES["no-data"]))["data"] is None


def test_binary_payloads_that_are_valid_utf8_stay_bytes() -> None:
    event = SAMPLES["binary-valid-utf8"]
    decoded = from_avro(to_avro(event))
    assert decoded.data == b'{"looks":"like text"}' and isinstance(decoded.data, bytes)
    # also when another producer wrote the bytes branch without a content type
    assert from_avro(write({"attribute": REQUIRED, "data": b"plain ascii"})).data == b"plain ascii"


def test_other_producers_json_value_branches() -> None:
    nested = {
        "value": {
            "name": "x",
            "tags": [{"value": {"k": "v"}}],
            "children": {"first": {"value": {"n": 1.0}}},
            "none": None,
        }
    }
    data = {"a": 1.5, "ok": True, "obj": nested, "z": None}
    event = from_avro(write({"attribute": REQUIRED, "data": data}))
    assert event.datacontenttype == "application/json"
    assert event.data == {
        "a": 1.5, "ok": True, "z": None,
        "obj": {"name": "x", "tags": [{"k": "v"}], "children": {"first": {"n": 1.0}}, "none": None},
    }
    assert from_avro(write({"attribute": REQUIRED, "data": [{"value": {"i": "j"}}]})).data == [
        {"i": "j"}
    ]
    assert from_avro(write({"attribute": REQUIRED, "data": 2.5})).data == 2.5
    assert from_avro(write({"attribute": REQUIRED, "data": False})).data is False
    string = from_avro(write({"attribute": REQUIRED, "data": "s"}))
    assert (string.data, string.datacontenttype) == ("s", "application/json")
    xml = from_avro(write({
        "attribute": {**REQUIRED, "datacontenttype": "application/xml"}, "data": "<a/>",
    }))
    assert xml.data == b"<a/>"  # a non-text, non-JSON type gives bytes


def test_attribute_values_of_every_union_branch() -> None:
    event = from_avro(write({
        "attribute": {**REQUIRED, "count": 7, "flag": True, "blob": b"\x00\xff", "gone": None},
        "data": None,
    }))
    assert event.extensions == {"count": "7", "flag": "true", "blob": "AP8="}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "not a CloudEvents Avro datum"),
        (b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "not a CloudEvents Avro datum"),
        (write({"attribute": REQUIRED, "data": None}) + b"\x00", "bytes left after the record"),
        (write({"attribute": {k: v for k, v in REQUIRED.items() if k != "id"}, "data": None}),
         "missing required attribute 'id'"),
        (write({"attribute": {k: v for k, v in REQUIRED.items() if k != "specversion"},
                "data": None}), "missing required attribute 'specversion'"),
        (write({"attribute": {**REQUIRED, "specversion": "0.3"}, "data": None}),
         "unsupported specversion"),
        (write({"attribute": {**REQUIRED, "id": 5}, "data": None}), "'id' must be a non-empty"),
        (write({"attribute": {**REQUIRED, "time": "noon"}, "data": None}), "RFC 3339"),
        (write({"attribute": {**REQUIRED, "time": 5}, "data": None}), "RFC 3339 string"),
        (write({"attribute": {**REQUIRED, "Bad": "x"}, "data": None}), "lower-case"),
        (write({"attribute": {**REQUIRED, "datacontenttype": "text/plain"}, "data": 1.0}),
         "not JSON"),
        (write({"attribute": {**REQUIRED, "datacontenttype": "application/json"},
                "data": b"{oops"}), "not valid JSON"),
    ],
)
def test_invalid_input(payload: bytes, message: str) -> None:
    with pytest.raises(InvalidCloudEventError, match=message):
        from_avro(payload)


def test_truncated_payload_is_invalid() -> None:
    payload = to_avro(SAMPLES["all-attributes-json"])
    with pytest.raises(InvalidCloudEventError):
        from_avro(payload[: len(payload) // 2])
