"""SubscribeTopicEventsAlpha1: a streaming subscription (the SDK's ``client.subscribe()``
and ``subscribe_with_handler``).

The app's first message names the pub/sub, topic, dead letter topic and metadata; the
sidecar answers with an initial response, then sends each event down the stream as a
``TopicEventRequest`` and waits for the app's SUCCESS / RETRY / DROP for that event id. The
delivery worker behind it (:mod:`tether.workers.streaming`) settles the event by that answer
as it would an HTTP subscription's. The stream ending stops the worker: events still
waiting for an answer are retried (redelivered to whoever consumes the topic next).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from typing import Any

import grpc
from dapr.proto.runtime.v1 import appcallback_pb2, pubsub_pb2
from google.protobuf import struct_pb2

from tether.platform import errors
from tether.platform.components import Subscription
from tether.platform.errors import ApiError
from tether.platform.events import CloudEvent, InvalidCloudEventError
from tether.workers.app_channel import Outcome
from tether.workers.streaming import StreamingSubscriptions

log = logging.getLogger(__name__)

_STATUS = appcallback_pb2.TopicEventResponse.TopicEventResponseStatus
_OUTCOMES = {_STATUS.SUCCESS: Outcome.SUCCESS, _STATUS.RETRY: Outcome.RETRY,
             _STATUS.DROP: Outcome.DROP}
#: the route of a streaming subscription's events (the stream is the only destination)
STREAM_PATH = "/"


def topic_event(event: CloudEvent, topic: str, pubsub_name: str, path: str
                ) -> appcallback_pb2.TopicEventRequest:
    """The event as Dapr's streamer sends it: the CloudEvent's attributes in fields, its
    data as wire bytes, every other attribute and extension in ``extensions``."""
    extensions = struct_pb2.Struct()
    extras = {k: v for k, v in event.attributes().items()
              if k not in ("id", "source", "type", "specversion", "datacontenttype")}
    extensions.update(extras)
    return appcallback_pb2.TopicEventRequest(
        id=event.id, source=event.source, type=event.type, spec_version=event.specversion,
        data_content_type=event.datacontenttype or "", data=event.data_bytes() or b"",
        topic=topic, pubsub_name=pubsub_name, path=path, extensions=extensions,
    )


class StreamChannel:
    """The delivery worker's app channel over one open stream: ``deliver`` writes the
    event and waits for the app's answer with its id (answers are matched to deliveries
    of the same id in order)."""

    def __init__(self, context: Any, topic: str, pubsub_name: str) -> None:
        self._context = context
        self._topic = topic
        self._pubsub_name = pubsub_name
        self._write = asyncio.Lock()  # one message at a time on the stream
        self._waiting: defaultdict[str, deque[asyncio.Future[Outcome]]] = defaultdict(deque)
        self._closed = False

    async def deliver(self, path: str, event: CloudEvent) -> Outcome:
        if self._closed:
            return Outcome.RETRY
        try:
            message = topic_event(event, self._topic, self._pubsub_name, path)
        except (InvalidCloudEventError, ValueError, TypeError) as exc:
            log.error("event %s cannot be sent on the stream, dropping it: %s", event.id, exc)
            return Outcome.DROP
        answer: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        queue = self._waiting[event.id]
        queue.append(answer)
        try:
            async with self._write:
                await self._context.write(
                    pubsub_pb2.SubscribeTopicEventsResponseAlpha1(event_message=message))
            return await answer
        except Exception as exc:  # the stream broke under the write: try again later
            log.info("event %s not sent on the stream: %r", event.id, exc)
            return Outcome.RETRY
        finally:
            if answer in queue:
                queue.remove(answer)
            if not queue:
                self._waiting.pop(event.id, None)

    def writing(self) -> asyncio.Lock:
        """Held while writing to the stream."""
        return self._write

    def answered(self, processed: pubsub_pb2.SubscribeTopicEventsRequestProcessedAlpha1
                 ) -> None:
        """The app's answer for event ``processed.id``; an unknown id is ignored."""
        queue = self._waiting.get(processed.id)
        status = processed.status.status if processed.HasField("status") else _STATUS.SUCCESS
        outcome = _OUTCOMES.get(status, Outcome.RETRY)
        while queue:
            answer = queue.popleft()
            if not answer.done():
                answer.set_result(outcome)
                return
        log.debug("an answer for event %s, which waits for none", processed.id)

    def close(self) -> None:
        """No more answers will come: every waiting delivery is retried."""
        self._closed = True
        for queue in self._waiting.values():
            for answer in queue:
                if not answer.done():
                    answer.set_result(Outcome.RETRY)


class SubscribeRpc:
    def __init__(self, streams: StreamingSubscriptions) -> None:
        self.streams = streams

    async def serve(self, context: Any) -> bool:
        """One stream from its initial request to its end (ApiError for a bad start);
        False when the app closed its side of the stream (it can answer no more events),
        which ends the call with an error as in Dapr: the SDK reconnects on it (its own
        request stream may end early, racing its start)."""
        first = await context.read()
        if first is grpc.aio.EOF or not first.HasField("initial_request"):
            raise ApiError(400, errors.MALFORMED_REQUEST,
                           "initial request is required to start a topic subscription")
        initial = first.initial_request
        self.streams.check(initial.pubsub_name, initial.topic)
        subscription = Subscription(
            name=f"stream:{initial.pubsub_name}/{initial.topic}",
            pubsub_name=initial.pubsub_name, topic=initial.topic,
            default_path=STREAM_PATH,
            dead_letter_topic=initial.dead_letter_topic or None,
            metadata=dict(initial.metadata),
        )
        channel = StreamChannel(context, initial.topic, initial.pubsub_name)
        # the initial response goes out once the topic is consumed (an event published
        # after the app's subscribe() returns is the stream's) and before any event
        async with channel.writing():
            worker = await self.streams.open(subscription, channel)
            await context.write(pubsub_pb2.SubscribeTopicEventsResponseAlpha1(
                initial_response=pubsub_pb2.SubscribeTopicEventsResponseInitialAlpha1()))
        try:
            while True:
                message = await context.read()
                if message is grpc.aio.EOF:
                    return False
                if message.HasField("event_processed"):
                    channel.answered(message.event_processed)
        finally:
            channel.close()
            # shielded: a cancelled call (the app went away) still stops its worker
            await asyncio.shield(self.streams.close(worker))
