"""Schema loading and validation, and the platform events the brokers really emit checked
against their schemas (through the memory broker's shared engine)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tether.brokers.base import dead_letter_topic_for
from tether.brokers.memory import MemoryBroker, _named_stores
from tether.brokers.subscription import MALFORMED_EVENT_TYPE, Subscription
from tether.platform.events import CloudEvent
from tether.schemas import (
    CLOUDEVENT,
    DEAD_LETTER_EXTENSIONS,
    SchemaNotFoundError,
    SchemaValidationError,
    available_schemas,
    event_record,
    load_schema,
    schema_for_event_type,
    schema_source,
    validate,
    validate_event,
)


def test_available_schemas() -> None:
    assert available_schemas() == [
        CLOUDEVENT, MALFORMED_EVENT_TYPE, DEAD_LETTER_EXTENSIONS, "io.tether.state.changed"
    ]


@pytest.mark.parametrize("name", available_schemas())
def test_every_schema_parses_and_is_cached(name: str) -> None:
    parsed = load_schema(name)
    assert parsed is load_schema(name)
    assert parsed["type"] == "record"
    assert schema_source(name)["name"] in parsed["name"]


def test_unknown_schema() -> None:
    with pytest.raises(SchemaNotFoundError, match=r"no Avro schema named 'nope'.*cloudevent"):
        load_schema("nope")
    with pytest.raises(SchemaNotFoundError):
        load_schema("../pyproject")


def test_cloudevent_schema_is_the_spec_record() -> None:
    source = schema_source(CLOUDEVENT)
    assert (source["namespace"], source["name"]) == ("io.cloudevents", "CloudEvent")
    attribute, data = source["fields"]
    assert attribute == {
        "name": "attribute",
        "type": {"type": "map", "values": ["null", "boolean", "int", "string", "bytes"]},
    }
    # the union's order is part of the binary encoding: it must be the spec's
    branches = [b if isinstance(b, str) else b["type"] for b in data["type"]]
    assert branches == ["bytes", "null", "boolean", "map", "array", "double", "string"]


def test_validate_gives_a_clear_error() -> None:
    validate({"deadletterreason": "r", "deadlettertopic": "t"}, DEAD_LETTER_EXTENSIONS)
    with pytest.raises(SchemaValidationError, match=r"deadlettertopic: expected string, got 3"):
        validate({"deadletterreason": "r", "deadlettertopic": 3}, DEAD_LETTER_EXTENSIONS)
    with pytest.raises(SchemaValidationError, match=r"io\.tether\.deadletter"):
        validate({"deadletterreason": "r"}, DEAD_LETTER_EXTENSIONS)


def test_event_types_and_their_schemas() -> None:
    assert schema_for_event_type(MALFORMED_EVENT_TYPE) == MALFORMED_EVENT_TYPE
    assert schema_for_event_type("com.example.user.event") is None
    assert schema_for_event_type(CLOUDEVENT) is None  # the envelope is not an event type
    assert validate_event(CloudEvent(type="com.example.user.event", source="s")) is False
    wrong = CloudEvent(type=MALFORMED_EVENT_TYPE, source="s", data=b"x",
                       extensions={"deadletterreason": "r"})  # no time, no deadlettertopic
    with pytest.raises(SchemaValidationError, match="Malformed"):
        validate_event(wrong)
    assert event_record(wrong)["data"] == b"x"


async def take(subscription: Subscription, count: int) -> list[CloudEvent]:
    events = []
    async with asyncio.timeout(10):
        async for delivery in subscription:
            events.append(delivery.event)
            await delivery.ack()
            if len(events) == count:
                break
    return events


async def test_events_the_brokers_emit_match_their_schemas() -> None:
    name = f"schemas-{uuid.uuid4().hex[:8]}"
    topic = "orders"
    try:
        async with MemoryBroker(name) as broker:
            await broker.create_topic(topic, 1)
            # the raw bytes first: the engine dead-letters them before it hands out the event
            broker.memory_store.append_raw(topic, 0, b"\x00\x01 not a cloudevent")
            await broker.publish(topic, CloudEvent(type="t", source="s", data={"n": 1}))
            async with broker.subscribe(topic, "g") as subscription:
                async for delivery in subscription:
                    await delivery.dead_letter("handler refused it")
                    break
            async with broker.subscribe(dead_letter_topic_for(topic), "dl") as dead:
                dead_letters = await take(dead, 2)
    finally:
        _named_stores.pop(name, None)
    by_type = {event.type: event for event in dead_letters}
    malformed = by_type[MALFORMED_EVENT_TYPE]
    assert malformed.data == b"\x00\x01 not a cloudevent"
    assert validate_event(malformed) is True
    validate(malformed.extensions, DEAD_LETTER_EXTENSIONS)
    refused = by_type["t"]
    validate(refused.extensions, DEAD_LETTER_EXTENSIONS)
    assert refused.extensions["deadletterreason"] == "handler refused it"
    assert refused.extensions["deadletterdeliveries"] == "1"
