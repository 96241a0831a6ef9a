"""CloudEvent cost per event: Tether's fast path against the cloudevents SDK, in one run.

    .venv/bin/python bench/cloudevents.py [--events 20000] [--repeat 5]

Each operation runs over the same N events (200-byte JSON data, partitionkey and traceparent
extensions, a time) on both sides; the best of R runs is kept, since noise only ever slows a
run down. The SDK is cloudevents 2.x with its JSONFormat; it has no Avro format, so the Avro
rows compare against raw fastavro writing and reading the same record with the same schema.
Prints events/s and the ratio; record the figures in docs/cloudevents.md.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# This script is named like the SDK's package: Python puts its folder first on the path, so
# take it out (append-then-remove drops the first occurrence and never fails) and put the
# repository root there instead, or "import cloudevents" would import this file.
sys.path.append(str(Path(__file__).resolve().parent))
sys.path.remove(str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cloudevents.core.bindings import http as sdk_http
from cloudevents.core.bindings import kafka as sdk_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent as SDKCloudEvent
from fastavro import schemaless_reader, schemaless_writer

from tether.brokers.kafka.codec import from_kafka, to_kafka
from tether.platform.events import CloudEvent, utc_now
from tether.platform.events.avro_format import from_avro, to_avro
from tether.platform.events.http import from_http, to_http_binary, to_http_structured
from tether.platform.events.json_format import from_json, to_json
from tether.platform.events.sdk import to_sdk
from tether.schemas import CLOUDEVENT, load_schema

FORMAT = JSONFormat()
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
FILLER = "x" * 186  # {"n":NNNNNN,"p":"xxx..."} is 200 bytes


def best_rate(operation: Callable[[Any], object], inputs: Sequence[Any], repeat: int) -> float:
    """Events per second of the fastest of ``repeat`` passes over ``inputs``."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for item in inputs:
            operation(item)
        best = min(best, time.perf_counter() - started)
    return len(inputs) / best


def report(name: str, tether: float, other: float, other_name: str) -> None:
    print(f"{name:<28} tether {tether:>10,.0f}/s   {other_name} {other:>10,.0f}/s   "
          f"ratio {tether / other:5.2f}x", flush=True)


def run(count: int, repeat: int) -> None:
    numbers = list(range(count))
    events = [
        CloudEvent(type="bench.event", source="/bench", time=utc_now(),
                   data={"n": i % 1_000_000, "p": FILLER},
                   extensions={"partitionkey": f"key-{i % 64}", "traceparent": TRACEPARENT})
        for i in numbers
    ]
    sdk_events = [to_sdk(event) for event in events]
    print(f"{count:,} CloudEvents, {len(events[0].data_bytes() or b'')}-byte JSON data, "
          f"best of {repeat}\n", flush=True)

    def tether_new(i: int) -> CloudEvent:
        return CloudEvent(type="bench.event", source="/bench", time=utc_now(),
                          data={"n": i, "p": FILLER},
                          extensions={"partitionkey": "key", "traceparent": TRACEPARENT})

    def sdk_new(i: int) -> SDKCloudEvent:  # the SDK stamps id and time itself
        return SDKCloudEvent({"type": "bench.event", "source": "/bench", "partitionkey": "key",
                              "traceparent": TRACEPARENT}, {"n": i, "p": FILLER})

    report("construct", best_rate(tether_new, numbers, repeat),
           best_rate(sdk_new, numbers, repeat), "sdk")

    # Kafka binary mode
    report("kafka binary encode", best_rate(to_kafka, events, repeat),
           best_rate(lambda e: sdk_kafka.to_binary(e, FORMAT), sdk_events, repeat), "sdk")
    records = [to_kafka(event) for event in events]
    sdk_messages = [sdk_kafka.KafkaMessage(headers=dict(h), key=k, value=v or b"")
                    for k, v, h in records]
    report("kafka binary decode", best_rate(lambda r: from_kafka(r[1], r[2]), records, repeat),
           best_rate(lambda m: sdk_kafka.from_binary(m, FORMAT, SDKCloudEvent),
                     sdk_messages, repeat), "sdk")

    # HTTP
    binary = [to_http_binary(event) for event in events]
    report("http binary encode", best_rate(to_http_binary, events, repeat),
           best_rate(lambda e: sdk_http.to_binary(e, FORMAT), sdk_events, repeat), "sdk")
    report("http binary decode", best_rate(lambda m: from_http(m[0], m[1]), binary, repeat),
           best_rate(lambda m: sdk_http.from_binary(m, FORMAT, SDKCloudEvent),
                     [sdk_http.HTTPMessage(headers=h, body=b) for h, b in binary], repeat), "sdk")
    structured = [to_http_structured(event) for event in events]
    report("http structured decode",
           best_rate(lambda m: from_http(m[0], m[1]), structured, repeat),
           best_rate(lambda m: sdk_http.from_structured(m, FORMAT, SDKCloudEvent),
                     [sdk_http.HTTPMessage(headers=h, body=b) for h, b in structured],
                     repeat), "sdk")

    # JSON event format
    report("json encode", best_rate(to_json, events, repeat),
           best_rate(FORMAT.write, sdk_events, repeat), "sdk")
    documents = [to_json(event) for event in events]
    report("json decode", best_rate(from_json, documents, repeat),
           best_rate(lambda d: FORMAT.read(SDKCloudEvent, d), documents, repeat), "sdk")

    # Avro event format, against raw fastavro on the same record
    schema = load_schema(CLOUDEVENT)
    avro_records = [{"attribute": e.attributes(), "data": e.data_bytes()} for e in events]

    def raw_write(record: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        schemaless_writer(buffer, schema, record)
        return buffer.getvalue()

    report("avro encode", best_rate(to_avro, events, repeat),
           best_rate(raw_write, avro_records, repeat), "fastavro")
    payloads = [to_avro(event) for event in events]
    report("avro decode", best_rate(from_avro, payloads, repeat),
           best_rate(lambda p: schemaless_reader(io.BytesIO(p), schema, None), payloads, repeat),
           "fastavro")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    run(args.events, args.repeat)


if __name__ == "__main__":
    main()
