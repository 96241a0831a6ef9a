"""The policy of one target (timeout, retry, circuit breaker) and the one way to run a call
under it.

Composed as Dapr's runner (``pkg/resiliency/policy.go``): the timeout bounds each attempt,
the breaker counts each attempt, and the retry loop is outermost; a breaker that refuses a
call ends the retries at once. A call's result may stand for a failure (an app's answer
with an error status, for invocation): ``status`` reads it, and the retry's ``matching``
decides; once retries run out the last such result is returned, not raised.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from tether.platform.resiliency.breaker import CircuitBreaker, CircuitOpenError
from tether.platform.resiliency.errors import ResiliencyError
from tether.platform.resiliency.retry import RetryPolicy

log = logging.getLogger(__name__)

T = TypeVar("T")
#: the HTTP status of a call's result; None, or below 400, is a success
StatusOf = Callable[[T], int | None]


class PolicyTimeoutError(ResiliencyError, TimeoutError):
    """One attempt ran longer than the target's timeout policy."""

    def __init__(self, target: str, seconds: float) -> None:
        super().__init__(f"{target}: timed out after {seconds:g}s (resiliency timeout)")
        self.target = target
        self.seconds = seconds


@dataclass(frozen=True, slots=True)
class Clock:
    """Time as a policy sees it; tests pass their own."""

    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    random: Callable[[], float] = random.random


@dataclass(slots=True)
class Policy:
    """What applies to one target; all parts optional (no policy: the call runs once)."""

    target: str
    timeout: float | None = None
    retry: RetryPolicy | None = None
    breaker: CircuitBreaker | None = None
    clock: Clock = field(default_factory=Clock)

    @property
    def empty(self) -> bool:
        return self.timeout is None and self.retry is None and self.breaker is None

    async def call(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        status: StatusOf[T] | None = None,
        permanent: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """``fn()`` under the policy. ``permanent(exc)`` marks an error no retry can fix
        (an ETag mismatch, a bad request): it is raised at once, and the breaker counts
        it as a success of the component (it answered)."""
        if self.empty:
            return await fn()
        retries = 0
        started = self.clock.now()
        while True:
            try:
                result = await self._attempt(fn, status, permanent)
            except CircuitOpenError:
                raise
            except Exception as exc:
                if permanent is not None and permanent(exc):
                    raise
                code = getattr(exc, "status", None)
                if not self._may_retry(retries, code if isinstance(code, int) else None):
                    raise
                error: Exception | None = exc
            else:
                code = status(result) if status is not None else None
                if not _failed(code) or not self._may_retry(retries, code):
                    return result
                error = None
            retries += 1
            assert self.retry is not None
            delay = self.retry.delay(retries, self.clock.random)
            if self.retry.gives_up(self.clock.now() - started, delay):
                if error is not None:
                    raise error
                return result
            log.debug("%s: retry %d in %.3fs after %s", self.target, retries, delay,
                      error if error is not None else f"status {code}")
            await self.clock.sleep(delay)

    def _may_retry(self, retries_done: int, code: int | None) -> bool:
        retry = self.retry
        if retry is None or not retry.retries_left(retries_done):
            return False
        return code is None or retry.retries_status(code)

    async def _attempt(
        self,
        fn: Callable[[], Awaitable[T]],
        status: StatusOf[T] | None,
        permanent: Callable[[BaseException], bool] | None,
    ) -> T:
        breaker = self.breaker
        generation = breaker.before() if breaker is not None else 0
        try:
            result = await self._timed(fn)
        except Exception as exc:
            if breaker is not None:
                breaker.after(generation, permanent is not None and permanent(exc))
            raise
        if breaker is not None:
            breaker.after(generation, not _failed(status(result) if status else None))
        return result

    async def _timed(self, fn: Callable[[], Awaitable[T]]) -> T:
        if self.timeout is None:
            return await fn()
        deadline = asyncio.timeout(self.timeout)
        try:
            async with deadline:
                return await fn()
        except TimeoutError:
            if not deadline.expired():
                raise  # the call's own timeout, not the policy's
            raise PolicyTimeoutError(self.target, self.timeout) from None


def _failed(code: int | None) -> bool:
    return code is not None and code >= 400


#: the policy of a target nothing applies to
def no_policy(target: str) -> Policy:
    return Policy(target)
