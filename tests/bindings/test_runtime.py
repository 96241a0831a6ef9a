"""The bindings runtime with a real broker (embedded) and a real aiohttp app: the output
service's errors and async calls, input events from a source to the app through their topic
(acknowledged at the source only once on the topic), and the lease of exclusive sources.

The components here are small in-test sources and outputs (the real components have their
own contract tests against their servers in tests/bindings/components/)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web

from tests.workers import WAIT, AppServer, Call, status, until
from tether.brokers import Broker, SubscribeOptions, open_broker
from tether.platform.bindings import (
    Binding,
    BindingFailedError,
    BindingNotFoundError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
    BindingsService,
    Emit,
    InputMessage,
)
from tether.platform.bindings.messages import input_dead_letter_topic, output_dead_letter_topic
from tether.platform.errors import ApiError
from tether.platform.pubsub import PubSubRegistry
from tether.sidecar.bindings import read_binding_request
from tether.workers.bindings import BindingChannel, InputBindings, OutputCalls
from tether.workers.delivery import DeliveryOptions
from tether.workers.lease import Lease
from tether.workers.retry import Backoff

APP_ID = "bind-app"
FAST = DeliveryOptions(backoff=Backoff(initial=0.01, maximum=0.05), max_deliveries=3,
                       drain_timeout=2.0)


class Recorder:
    """An output side that records each request and answers by its operation."""

    operations = frozenset({"create", "get", "fail", "refuse"})

    def __init__(self) -> None:
        self.requests: list[BindingRequest] = []
        self.succeeded: list[BindingRequest] = []
        self.failures_left = 0

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        self.requests.append(request)
        if request.operation == "refuse":
            raise BindingRequestError("no such table")
        if request.operation == "fail" or self.failures_left > 0:
            self.failures_left -= 1
            raise BindingFailedError("server down")
        if request.operation == "get":
            if request.metadata.get("key") == "missing":
                raise BindingNotFoundError("no object 'missing'")
            return BindingResponse(b'{"v":1}', {"found": "yes"})
        self.succeeded.append(request)
        return BindingResponse(None, {"created": request.metadata.get("key", "")})


class ListSource:
    """An input side that emits its messages once each, acknowledging a message only after
    ``emit`` returned (a failed emit leaves it for the next run, as a real source does)."""

    def __init__(self, messages: list[InputMessage], *, exclusive: bool = False) -> None:
        self.pending = list(messages)
        self.acked: list[InputMessage] = []
        self.exclusive = exclusive
        self.runs = 0
        self.closed = 0

    async def run(self, emit: Emit) -> None:
        self.runs += 1
        while self.pending:
            message = self.pending[0]
            await emit(message)
            self.acked.append(self.pending.pop(0))
        await asyncio.Event().wait()  # a source reads until cancelled

    async def close(self) -> None:
        self.closed += 1


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    url = f"embedded://{tmp_path / 'broker.db'}?session_timeout=3&heartbeat_interval=0.3"
    async with open_broker(url) as opened:
        yield opened


@pytest.fixture
async def app() -> AsyncIterator[AppServer]:
    server = AppServer()
    await server.start()
    yield server
    await server.close()


class OneBroker(PubSubRegistry):
    """The registry of an app whose one pub/sub component is ``broker``."""

    def __init__(self, broker: Broker) -> None:
        super().__init__([])
        self._one = broker

    @property
    def names(self) -> list[str]:
        return ["pubsub"]

    async def broker(self, name: str) -> Broker:
        return self._one


def service_of(broker: Broker, *bindings: Binding) -> BindingsService:
    return BindingsService(APP_ID, {b.name: b for b in bindings}, pubsub=OneBroker(broker),
                           pubsub_name="pubsub")


async def drained(broker: Broker, topic: str, count: int) -> list[InputMessage]:
    """The first ``count`` events of ``topic`` (a dead-letter topic) as messages."""
    from tether.platform.bindings.messages import read_input

    found = []
    async with broker.subscribe(topic, f"check-{uuid.uuid4().hex[:6]}",
                                SubscribeOptions(start_from="earliest")) as sub:
        async def take() -> None:
            async for delivery in sub:
                found.append(delivery.event)
                await delivery.ack()
                if len(found) >= count:
                    return

        await asyncio.wait_for(take(), WAIT)
    return [read_input(event) for event in found]


# --- the HTTP body ------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "data"), [
    (b'{"operation":"create","data":"plain text"}', b"plain text"),
    (b'{"operation":"create","data":{"a":1}}', b'{"a":1}'),
    (b'{"operation":"create","data":[1,"\xc3\xa9"]}', '[1,"é"]'.encode()),
    (b'{"operation":"create"}', b""),
])
def test_data_reaches_the_component_as_dapr_passes_it(body: bytes, data: bytes) -> None:
    request, is_async = read_binding_request(body, None)
    assert (request.operation, request.data, is_async) == ("create", data, False)


@pytest.mark.parametrize("body", [
    b"[1]", b'{"operation": 5}', b'{"metadata": {"a": 1}}', b'{"metadata": "x"}',
    b"{", b'{"operation":"create","metadata":{"async":"perhaps"}}',
])
def test_a_malformed_body_is_dapr_s_400(body: bytes) -> None:
    with pytest.raises(ApiError) as caught:
        read_binding_request(body, None)
    assert (caught.value.status, caught.value.code) == (400, "ERR_MALFORMED_REQUEST")


def test_async_is_read_from_the_metadata_or_the_header_and_not_passed_on() -> None:
    request, is_async = read_binding_request(
        b'{"operation":"create","metadata":{"async":"true","key":"k"}}', None)
    assert is_async and request.metadata == {"key": "k"}
    assert read_binding_request(b'{"operation":"create"}', "true")[1]


# --- output calls -------------------------------------------------------------------------


async def test_output_errors_answer_in_dapr_s_shape(broker: Broker) -> None:
    service = service_of(broker, Binding("store", "test", output=Recorder()))
    cases = [
        ("nope", "create", {}, 404),
        ("store", "delete", {}, 400),
        ("store", "", {}, 400),
        ("store", "refuse", {}, 400),
        ("store", "get", {"key": "missing"}, 404),
        ("store", "fail", {}, 500),
    ]
    for name, operation, metadata, expected in cases:
        with pytest.raises(ApiError) as caught:
            await service.invoke(name, BindingRequest(operation, b"", metadata))
        assert caught.value.status == expected, (name, operation)
        assert caught.value.code == "ERR_INVOKE_OUTPUT_BINDING"
    answer = await service.invoke("store", BindingRequest("get", b"", {"key": "k"}))
    assert (answer.data, dict(answer.metadata)) == (b'{"v":1}', {"found": "yes"})


async def test_async_calls_run_with_retries_and_refused_ones_are_dead_lettered(
    broker: Broker,
) -> None:
    recorder = Recorder()
    recorder.failures_left = 2  # the server is down for the first two attempts
    service = service_of(broker, Binding("store", "test", output=recorder))
    calls = OutputCalls(service, broker, FAST)
    await calls.start()
    try:
        accepted = await service.invoke_async(
            "store", BindingRequest("create", b"row", {"key": "a"}), key="a")
        refused = await service.invoke_async("store", BindingRequest("refuse", b"bad", {}))
        assert accepted != refused
        dead = await drained(broker, output_dead_letter_topic(APP_ID), 1)
        assert dead[0].data == b"bad"

        await until(lambda: bool(recorder.succeeded), "the call to succeed")
        creates = [r for r in recorder.requests if r.operation == "create"]
        assert len(creates) == 3  # two failures, then the success; never a fourth
        assert recorder.succeeded[0].data == b"row"
    finally:
        await calls.stop()


async def test_an_async_call_to_an_unknown_binding_is_refused_at_once(broker: Broker) -> None:
    service = service_of(broker, Binding("store", "test", output=Recorder()))
    with pytest.raises(ApiError) as caught:
        await service.invoke_async("nope", BindingRequest("create"))
    assert caught.value.status == 404


# --- input events -------------------------------------------------------------------------


async def test_input_events_reach_the_app_with_metadata_headers_and_retries(
    broker: Broker, app: AppServer,
) -> None:
    attempts: dict[bytes, int] = {}

    async def reply(call: Call) -> web.StreamResponse:
        attempts[call.body] = attempts.get(call.body, 0) + 1
        if call.body == b"flaky" and attempts[call.body] < 3:
            return web.Response(status=500)
        if call.body == b"poison":
            return status("DROP")
        return web.Response(status=200)

    app.reply = reply
    source = ListSource([
        InputMessage(b'{"n":1}', {"topic": "orders", "offset": "7"}, key="k1"),
        InputMessage(b"flaky", {}, key="k2", content_type="text/plain"),
        InputMessage(b"poison", {}),
    ])
    name = f"queue{uuid.uuid4().hex[:6]}"
    service = service_of(broker, Binding(name, "test", input=source, route="/in"))
    inputs = InputBindings(service, broker, BindingChannel(app.port), FAST)
    await inputs.start()
    try:
        dead = await drained(broker, input_dead_letter_topic(name), 1)
        assert dead[0].data == b"poison"

        await until(lambda: attempts.get(b"flaky", 0) >= 3 and b'{"n":1}' in attempts,
                    "the flaky event's third attempt")
    finally:
        await inputs.stop()
    first = next(c for c in app.calls if c.body == b'{"n":1}')
    assert first.path == "in"
    assert first.headers["topic"] == "orders" and first.headers["offset"] == "7"
    assert first.headers["Content-Type"] == "application/json"
    flaky = [c for c in app.calls if c.body == b"flaky"]
    assert flaky[0].headers["Content-Type"] == "text/plain"
    assert attempts[b'{"n":1}'] == 1
    assert len(source.acked) == 3 and source.closed == 1


async def test_a_binding_the_app_does_not_serve_is_not_read(broker: Broker) -> None:
    async def not_found(request: web.Request) -> web.Response:
        return web.Response(status=404)

    server = web.Application()
    server.router.add_route("*", "/{path:.*}", not_found)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    source = ListSource([InputMessage(b"x")])
    service = service_of(broker, Binding("unwanted", "test", input=source))
    inputs = InputBindings(service, broker, BindingChannel(port), FAST)
    try:
        await inputs.start()
        assert inputs.readers == {} and source.runs == 0 and source.pending
    finally:
        await inputs.stop()
        await runner.cleanup()


class FailingOnce:
    """A source whose first emit fails: the message must stay unacknowledged and come
    again when the worker starts the source anew."""

    exclusive = False

    def __init__(self) -> None:
        self.runs = 0
        self.acked = 0

    async def run(self, emit: Emit) -> None:
        self.runs += 1
        if self.runs == 1:
            raise BindingFailedError("connection reset")
        await emit(InputMessage(b"again"))
        self.acked += 1
        await asyncio.Event().wait()

    async def close(self) -> None:
        pass


async def test_a_failed_source_is_started_again(
    broker: Broker, app: AppServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("tether.workers.bindings.SOURCE_BACKOFF",
                        Backoff(initial=0.01, maximum=0.01))
    source = FailingOnce()
    service = service_of(broker, Binding(f"f{uuid.uuid4().hex[:6]}", "test", input=source))
    inputs = InputBindings(service, broker, BindingChannel(app.port), FAST)
    await inputs.start()
    try:
        (call,) = await app.wait_calls(1)
        assert call.body == b"again" and source.runs == 2
    finally:
        await inputs.stop()


# --- the lease ----------------------------------------------------------------------------


async def test_never_two_members_run_the_job_and_a_survivor_takes_over(
    broker: Broker,
) -> None:
    running: list[str] = []
    overlaps: list[list[str]] = []

    def job(member: str) -> Callable[[], Awaitable[None]]:
        async def work() -> None:
            if running:
                overlaps.append([*running, member])
            running.append(member)
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(member)
        return work

    topic, group = f"lease-{uuid.uuid4().hex[:6]}", "app.lease"
    members = {
        name: Lease(broker, topic, group, "cron", renew=0.2, grace=0.4)
        for name in ("first", "second")
    }
    tasks = {"first": asyncio.create_task(members["first"].run(job("first")))}
    await until(lambda: running == ["first"], "the first member to run")
    # the second member joins: the group may move the baton (a rebalance), never double it
    tasks["second"] = asyncio.create_task(members["second"].run(job("second")))
    await asyncio.sleep(3)
    await until(lambda: len(running) == 1, "one member to run")
    holder = running[0]
    survivor = "second" if holder == "first" else "first"
    tasks[holder].cancel()
    await asyncio.gather(tasks[holder], return_exceptions=True)
    await until(lambda: running == [survivor], "the survivor to take over")
    tasks[survivor].cancel()
    await asyncio.gather(tasks[survivor], return_exceptions=True)
    assert running == [] and overlaps == []
