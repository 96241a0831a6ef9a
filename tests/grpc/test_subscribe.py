"""Streaming subscriptions (SubscribeTopicEventsAlpha1) with the SDK's ``client.subscribe``
and ``subscribe_with_handler`` against ``tether run``: SUCCESS / RETRY / DROP, dead
letters, the STREAMING entry in the metadata, and the worker stopping with the stream."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests
from dapr.clients import DaprClient
from dapr.clients.grpc._response import TopicEventResponse
from dapr.clients.grpc.subscription import Subscription
from dapr.common.pubsub.subscription import SubscriptionMessage

from tests.grpc.conftest import GrpcSidecar
from tests.invocation.test_run_invoke import WAIT
from tests.sidecars import until


def _next(subscription: Subscription) -> SubscriptionMessage:
    """The stream's next message (the SDK's call blocks: each try gets WAIT seconds). The
    SDK answers None after reconnecting a stream that ended (its request stream can end
    as it starts: a race in the SDK that Dapr answers the same way), so it is asked again."""
    with ThreadPoolExecutor(1) as pool:
        for _ in range(5):
            found = pool.submit(subscription.next_message)
            try:
                message = found.result(timeout=WAIT)
            except TimeoutError:
                subscription.close()  # ends the blocked read
                raise
            if message is not None:
                return message
    raise AssertionError("the stream kept ending")


def _streams(sidecar: GrpcSidecar) -> list[tuple[str, str, str, str]]:
    found = requests.get(f"http://127.0.0.1:{sidecar.http_port}/v1.0/metadata",
                         timeout=30).json()
    return [(s["pubsubname"], s["topic"], s["type"], s["deadLetterTopic"])
            for s in found["subscriptions"] if s["type"] == "STREAMING"]


def test_subscribe_success_retry_and_close(client: DaprClient, sidecar: GrpcSidecar) -> None:
    subscription = client.subscribe("pubsub", "streamed")
    try:
        client.publish_event("pubsub", "streamed", json.dumps({"n": 1}),
                             data_content_type="application/json")
        first = _next(subscription)
        assert (first.data(), first.topic(), first.pubsub_name(), first.type(),
                first.data_content_type()) == (
            {"n": 1}, "streamed", "pubsub", "com.dapr.event.sent", "application/json")
        assert first.extensions()["topic"] == "streamed"
        until(lambda: _streams(sidecar) == [("pubsub", "streamed", "STREAMING", "")],
              "the open stream listed in the metadata")
        subscription.respond_retry(first)
        again = _next(subscription)  # RETRY: the same event comes back
        assert (again.id(), again.data()) == (first.id(), {"n": 1})
        subscription.respond_success(again)
        client.publish_event("pubsub", "streamed", "plain")
        after = _next(subscription)  # the acked one is not redelivered
        assert (after.data(), after.data_content_type()) == ("plain", "text/plain")
        subscription.respond_success(after)
    finally:
        subscription.close()
    until(lambda: _streams(sidecar) == [], "the stream's worker stops with it")


def test_drop_goes_to_the_dead_letter_topic(client: DaprClient, sidecar: GrpcSidecar
                                            ) -> None:
    dead = client.subscribe("pubsub", "streamed-dead")
    main = client.subscribe("pubsub", "streamed-drop", dead_letter_topic="streamed-dead")
    try:
        client.publish_event("pubsub", "streamed-drop", "drop me")
        dropped = _next(main)
        main.respond_drop(dropped)
        lettered = _next(dead)
        assert lettered.data() == "drop me"
        dead.respond_success(lettered)
    finally:
        main.close()
        dead.close()


def test_subscribe_with_handler(client: DaprClient) -> None:
    got: list[Any] = []
    lock = threading.Lock()

    def handler(message: SubscriptionMessage) -> TopicEventResponse:
        with lock:
            got.append(message.data())
        return TopicEventResponse("success")

    close = client.subscribe_with_handler("pubsub", "handled", handler)
    try:
        for n in range(3):
            client.publish_event("pubsub", "handled", json.dumps({"n": n}),
                                 data_content_type="application/json")
        until(lambda: len(got) == 3, "three events handled")
        assert sorted(g["n"] for g in got) == [0, 1, 2]
    finally:
        close()


def test_unknown_pubsub_is_refused(client: DaprClient) -> None:
    with pytest.raises(Exception, match="pubsub nope not found"):
        client.subscribe("nope", "streamed")
