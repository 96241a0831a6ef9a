"""The JSON event format and batch format: round trips, the data members, and validation."""

from __future__ import annotations

import base64
import json

import pytest

from tests.platform.test_event import sample_events
from tether.platform.events import CloudEvent, InvalidCloudEventError
from tether.platform.events.json_format import (
    from_json,
    from_json_batch,
    to_json,
    to_json_batch,
)

SAMPLES = sample_events()
MINIMAL = {"specversion": "1.0", "id": "1", "source": "/s", "type": "t"}


@pytest.mark.parametrize("name", SAMPLES)
def test_round_trip(name: str) -> None:
    event = SAMPLES[name]
    assert from_json(to_json(event)) == event


def test_batch_round_trip() -> None:
    events = list(SAMPLES.values())
    assert from_json_batch(to_json_batch(events)) == events
    assert from_json_batch(to_json_batch([])) == []
    assert json.loads(to_json_batch(events))[0]["id"] == events[0].id


def test_data_members_follow_the_data_type() -> None:
    as_json = json.loads(to_json(SAMPLES["all-attributes-json"]))
    assert as_json["data"] == SAMPLES["all-attributes-json"].data and "data_base64" not in as_json
    assert as_json["time"] == "2024-05-06T07:08:09.123456Z"
    assert as_json["attempt"] == "2" and as_json["partitionkey"] == "order-17"

    text = json.loads(to_json(SAMPLES["text"]))
    assert text["data"] == "línea 1\nlínea 2 ✓"

    binary = json.loads(to_json(SAMPLES["binary"]))
    assert "data" not in binary
    assert base64.b64decode(binary["data_base64"]) == bytes(range(256))

    assert "data" not in json.loads(to_json(SAMPLES["no-data"]))
    assert "data_base64" not in json.loads(to_json(SAMPLES["no-data"]))


def test_output_is_utf8_json_without_escapes() -> None:
    raw = to_json(SAMPLES["header-unsafe-values"])
    assert "naïve café ☕".encode() in raw


def test_reading_gives_canonical_data() -> None:
    def read(**members: object) -> CloudEvent:
        return from_json(json.dumps({**MINIMAL, **members}))

    # no datacontenttype: the data member is JSON
    assert read(data={"a": 1}).data == {"a": 1}
    assert read(data="s").datacontenttype == "application/json"
    # text/* keeps the string; other types get bytes, as binary mode would deliver them
    assert read(data="x", datacontenttype="text/csv").data == "x"
    assert read(data="<a/>", datacontenttype="application/xml").data == b"<a/>"
    # data_base64 is decoded by content type: binary stays bytes even when it is UTF-8
    b64 = base64.b64encode(b'{"a":1}').decode()
    assert read(data_base64=b64, datacontenttype="application/octet-stream").data == b'{"a":1}'
    assert read(data_base64=b64, datacontenttype="application/json").data == {"a": 1}
    assert read(data_base64=b64, datacontenttype="text/plain").data == '{"a":1}'
    assert read(data_base64=b64).data == b'{"a":1}'
    # null members are absent
    assert read(data=None, subject=None, traceparent=None).attributes() == read().attributes()
    # integer and boolean extensions take their canonical string form
    assert read(count=3, flag=False).extensions == {"count": "3", "flag": "false"}


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[]", "must be a JSON object, got array"),
        (b'"event"', "must be a JSON object, got string"),
        (json.dumps({k: v for k, v in MINIMAL.items() if k != "id"}), "missing required .*'id'"),
        (json.dumps({k: v for k, v in MINIMAL.items() if k != "source"}), "'source'"),
        (json.dumps({k: v for k, v in MINIMAL.items() if k != "type"}), "'type'"),
        (json.dumps({k: v for k, v in MINIMAL.items() if k != "specversion"}), "'specversion'"),
        (json.dumps({**MINIMAL, "specversion": "0.3"}), "unsupported specversion '0.3'"),
        (json.dumps({**MINIMAL, "specversion": 1.0}), "unsupported specversion 1.0"),
        (json.dumps({**MINIMAL, "id": 17}), "'id' must be a non-empty string"),
        (json.dumps({**MINIMAL, "type": ""}), "'type' must be a non-empty string"),
        (json.dumps({**MINIMAL, "time": "tomorrow"}), "not an RFC 3339 timestamp"),
        (json.dumps({**MINIMAL, "time": "2024-01-01T00:00:00"}), "no UTC offset"),
        (json.dumps({**MINIMAL, "time": 1700000000}), "'time' must be an RFC 3339 string"),
        (json.dumps({**MINIMAL, "subject": ["a"]}), "'subject' must be a string"),
        (json.dumps({**MINIMAL, "subject": ""}), "'subject' must not be empty"),
        (json.dumps({**MINIMAL, "datacontenttype": 5, "data": 1}), "'datacontenttype'"),
        (json.dumps({**MINIMAL, "data": 1, "data_base64": "AA=="}), "both 'data' and"),
        (json.dumps({**MINIMAL, "data_base64": "***"}), "not valid Base64"),
        (json.dumps({**MINIMAL, "data_base64": 12}), "must be a Base64 string"),
        (json.dumps({**MINIMAL, "data": {"a": 1}, "datacontenttype": "text/plain"}),
         "not JSON"),
        (json.dumps({**MINIMAL, "Bad-Name": "x"}), "lower-case ASCII"),
        (json.dumps({**MINIMAL, "ratio": 0.5}), "extension 'ratio' must be a string"),
        (json.dumps({**MINIMAL, "nested": {"a": 1}}), "got object"),
    ],
)
def test_invalid_input(payload: bytes | str, message: str) -> None:
    with pytest.raises(InvalidCloudEventError, match=message):
        from_json(payload)


def test_invalid_batches() -> None:
    with pytest.raises(InvalidCloudEventError, match="must be a JSON array"):
        from_json_batch(json.dumps(MINIMAL))
    with pytest.raises(InvalidCloudEventError, match="batch event 1: missing required"):
        from_json_batch(json.dumps([MINIMAL, {"specversion": "1.0"}]))


def test_unserializable_data_is_an_invalid_event() -> None:
    with pytest.raises(InvalidCloudEventError, match="not JSON-serializable"):
        to_json(CloudEvent(type="t", source="s", data={"when": object()}))
    with pytest.raises(InvalidCloudEventError, match="not JSON-serializable"):
        to_json(CloudEvent(type="t", source="s", data=float("nan")))
    with pytest.raises(InvalidCloudEventError, match="needs a JSON datacontenttype"):
        to_json(CloudEvent(type="t", source="s", data={"a": 1}, datacontenttype="text/plain"))
