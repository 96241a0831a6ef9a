"""Policies run calls: retries (count, backoff shape, matching), timeouts, circuit breakers.
A fake clock stands in for time: nothing here waits or asserts a duration."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from tether.platform.resiliency import (
    BreakerPolicy,
    CircuitOpenError,
    Clock,
    Policy,
    PolicyTimeoutError,
    RetryPolicy,
    StatusCodes,
)
from tether.platform.resiliency.breaker import CLOSED, HALF_OPEN, OPEN, Trip
from tether.platform.resiliency.retry import EXPONENTIAL, HTTP_CODES


class FakeTime:
    def __init__(self, rand: float = 0.5) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.rand = rand

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> Clock:
        return Clock(now=lambda: self.now, sleep=self.sleep, random=lambda: self.rand)


class Flaky:
    """Fails ``failures`` times, then answers ``ok``."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.calls = 0
        self.error = error or ConnectionError("refused")

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "ok"


async def test_no_policy_runs_the_call_once() -> None:
    flaky = Flaky(1)
    with pytest.raises(ConnectionError):
        await Policy("t").call(flaky)
    assert flaky.calls == 1


async def test_constant_retries_until_success() -> None:
    t = FakeTime()
    policy = Policy("t", retry=RetryPolicy("r", duration=0.2, max_retries=5), clock=t.clock())
    flaky = Flaky(3)
    assert await policy.call(flaky) == "ok"
    assert flaky.calls == 4
    assert t.sleeps == [0.2, 0.2, 0.2]


async def test_max_retries_counts_retries_not_attempts() -> None:
    t = FakeTime()
    policy = Policy("t", retry=RetryPolicy("r", duration=1, max_retries=2), clock=t.clock())
    flaky = Flaky(10)
    with pytest.raises(ConnectionError):
        await policy.call(flaky)
    assert flaky.calls == 3
    zero = Policy("t", retry=RetryPolicy("r", max_retries=0), clock=t.clock())
    once = Flaky(10)
    with pytest.raises(ConnectionError):
        await zero.call(once)
    assert once.calls == 1


async def test_minus_one_retries_for_ever() -> None:
    t = FakeTime()
    policy = Policy("t", retry=RetryPolicy("r", duration=5, max_retries=-1), clock=t.clock())
    flaky = Flaky(500)
    assert await policy.call(flaky) == "ok"
    assert flaky.calls == 501


def test_exponential_backoff_grows_by_one_and_a_half_up_to_max_interval() -> None:
    retry = RetryPolicy("r", policy=EXPONENTIAL, max_interval=3.0)
    middle = [retry.delay(n, lambda: 0.5) for n in range(1, 9)]  # no randomization
    assert middle[:4] == pytest.approx([0.5, 0.75, 1.125, 1.6875])
    assert middle == sorted(middle)
    assert middle[-1] == 3.0 and middle[-2] == 3.0
    # randomized by +/-50% around the interval
    assert retry.delay(2, lambda: 0.0) == pytest.approx(0.375)
    assert retry.delay(2, lambda: 0.999999) == pytest.approx(1.125, rel=1e-5)


async def test_exponential_gives_up_after_fifteen_minutes() -> None:
    t = FakeTime()
    policy = Policy("t", retry=RetryPolicy("r", policy=EXPONENTIAL, max_interval=60),
                    clock=t.clock())
    flaky = Flaky(10_000)
    with pytest.raises(ConnectionError):
        await policy.call(flaky)
    assert sum(t.sleeps) <= 15 * 60
    assert 15 < flaky.calls < 40


async def test_permanent_errors_are_not_retried() -> None:
    t = FakeTime()
    policy = Policy("t", retry=RetryPolicy("r", max_retries=5), clock=t.clock())
    flaky = Flaky(3, ValueError("etag mismatch"))
    with pytest.raises(ValueError):
        await policy.call(flaky, permanent=lambda e: isinstance(e, ValueError))
    assert flaky.calls == 1


@dataclass
class Answer:
    status: int


async def test_results_with_an_error_status_are_retried_as_matching_says() -> None:
    t = FakeTime()
    codes = StatusCodes.parse("429,502-503", HTTP_CODES)
    policy = Policy("t", retry=RetryPolicy("r", duration=1, max_retries=3, http_codes=codes),
                    clock=t.clock())
    answers = iter([Answer(503), Answer(429), Answer(200)])
    calls = 0

    async def call() -> Answer:
        nonlocal calls
        calls += 1
        return next(answers)

    assert (await policy.call(call, status=lambda a: a.status)).status == 200
    assert calls == 3
    # a status the matching does not list is returned at once
    answers = iter([Answer(500), Answer(200)])
    calls = 0
    assert (await policy.call(call, status=lambda a: a.status)).status == 500
    assert calls == 1
    # retries used up: the last answer is returned, not raised
    answers = iter([Answer(503)] * 4)
    calls = 0
    assert (await policy.call(call, status=lambda a: a.status)).status == 503
    assert calls == 4


async def test_without_matching_every_error_status_is_retried() -> None:
    t = FakeTime()
    policy = Policy("t", retry=RetryPolicy("r", duration=1, max_retries=1), clock=t.clock())
    answers = iter([Answer(404), Answer(201)])

    async def call() -> Answer:
        return next(answers)

    assert (await policy.call(call, status=lambda a: a.status)).status == 201


async def test_a_timeout_cancels_the_attempt_and_is_retried() -> None:
    cancelled = 0
    calls = 0

    async def slow_then_fast() -> str:
        nonlocal calls, cancelled
        calls += 1
        if calls == 1:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled += 1
                raise
        return "ok"

    policy = Policy("t", timeout=0.01, retry=RetryPolicy("r", duration=0, max_retries=1))
    assert await policy.call(slow_then_fast) == "ok"
    assert (calls, cancelled) == (2, 1)
    with pytest.raises(PolicyTimeoutError) as caught:
        await Policy("store x", timeout=0.01).call(asyncio.Event().wait)
    assert isinstance(caught.value, TimeoutError) and "store x" in str(caught.value)


async def test_a_timeout_raised_by_the_call_itself_is_not_the_policys() -> None:
    async def own_timeout() -> None:
        raise TimeoutError("socket")

    with pytest.raises(TimeoutError) as caught:
        await Policy("t", timeout=60).call(own_timeout)
    assert not isinstance(caught.value, PolicyTimeoutError)


def breaker(t: FakeTime, **kwargs: object) -> Policy:
    spec = BreakerPolicy("cb", **kwargs)  # type: ignore[arg-type]
    return Policy("t", breaker=spec.new("x", lambda: t.now), clock=t.clock())


async def test_the_breaker_opens_on_its_trip_half_opens_after_timeout_and_closes() -> None:
    t = FakeTime()
    policy = breaker(t, timeout=30.0, trip=Trip("consecutiveFailures > 2"))
    cb = policy.breaker
    assert cb is not None
    failing = Flaky(10**6)
    for _ in range(3):
        with pytest.raises(ConnectionError):
            await policy.call(failing)
    assert cb.state == OPEN and failing.calls == 3
    with pytest.raises(CircuitOpenError):
        await policy.call(failing)
    assert failing.calls == 3  # refused without calling
    assert cb.open_for() == 30.0
    t.now += 30.0
    assert cb.state == HALF_OPEN
    assert await policy.call(Flaky(0)) == "ok"
    assert cb.state == CLOSED


async def test_a_failure_while_half_open_opens_it_again() -> None:
    t = FakeTime()
    policy = breaker(t, timeout=10.0, trip=Trip("consecutiveFailures >= 1"))
    cb = policy.breaker
    assert cb is not None
    with pytest.raises(ConnectionError):
        await policy.call(Flaky(1))
    t.now += 10.0
    assert cb.state == HALF_OPEN
    with pytest.raises(ConnectionError):
        await policy.call(Flaky(1))
    assert cb.state == OPEN


async def test_half_open_lets_max_requests_through_and_needs_that_many_successes() -> None:
    t = FakeTime()
    policy = breaker(t, max_requests=2, timeout=10.0, trip=Trip("consecutiveFailures >= 1"))
    cb = policy.breaker
    assert cb is not None
    with pytest.raises(ConnectionError):
        await policy.call(Flaky(1))
    t.now += 10.0
    release = asyncio.Event()
    started = 0

    async def held() -> str:
        nonlocal started
        started += 1
        await release.wait()
        return "ok"

    first = asyncio.create_task(policy.call(held))
    second = asyncio.create_task(policy.call(held))
    await asyncio.sleep(0)
    with pytest.raises(CircuitOpenError):  # the third is over the allowance
        await policy.call(held)
    assert started == 2
    release.set()
    assert await asyncio.gather(first, second) == ["ok", "ok"]
    assert cb.state == CLOSED


async def test_the_default_trip_is_more_than_five_consecutive_failures() -> None:
    t = FakeTime()
    policy = breaker(t)
    cb = policy.breaker
    assert cb is not None
    for _ in range(5):
        with pytest.raises(ConnectionError):
            await policy.call(Flaky(1))
    assert cb.state == CLOSED
    with pytest.raises(ConnectionError):
        await policy.call(Flaky(1))
    assert cb.state == OPEN


async def test_an_interval_resets_the_counts_while_closed() -> None:
    t = FakeTime()
    policy = breaker(t, interval=5.0, trip=Trip("totalFailures >= 3"))
    cb = policy.breaker
    assert cb is not None
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await policy.call(Flaky(1))
    t.now += 5.0
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await policy.call(Flaky(1))
    assert cb.state == CLOSED  # 2 + 2 failures, never 3 in one interval
    with pytest.raises(ConnectionError):
        await policy.call(Flaky(1))
    assert cb.state == OPEN


async def test_an_open_breaker_stops_the_retries() -> None:
    t = FakeTime()
    cb = BreakerPolicy("cb", trip=Trip("consecutiveFailures >= 2")).new("x", lambda: t.now)
    policy = Policy("t", retry=RetryPolicy("r", duration=1, max_retries=10), breaker=cb,
                    clock=t.clock())
    flaky = Flaky(100)
    with pytest.raises(CircuitOpenError):
        await policy.call(flaky)
    assert flaky.calls == 2 and cb.state == OPEN


async def test_a_trip_expression_that_fails_does_not_trip() -> None:
    t = FakeTime()
    policy = breaker(t, trip=Trip("requests / (totalSuccesses - totalSuccesses) > 0"))
    for _ in range(10):
        with pytest.raises(ConnectionError):
            await policy.call(Flaky(1))
    assert policy.breaker is not None and policy.breaker.state == CLOSED


async def test_permanent_errors_count_as_answers_for_the_breaker() -> None:
    t = FakeTime()
    policy = breaker(t, trip=Trip("consecutiveFailures >= 1"))
    with pytest.raises(ValueError):
        await policy.call(Flaky(1, ValueError("conflict")),
                          permanent=lambda e: isinstance(e, ValueError))
    assert policy.breaker is not None and policy.breaker.state == CLOSED
