"""Client methods as plans: the logic of a method written once, for both clients.

A plan is a generator that yields the steps it needs and gets each one's outcome back. A
:class:`~tether.sdk.client_http.Call` yielded comes back as its Reply (a non-2xx answer is
raised in the plan as TetherApiError), a :class:`Send` as its Reply whatever the status, a
:class:`Pause` as None, :data:`BLOCK` (in a context manager's plan) as whether the with-block
raised. An exception of a step is raised in the plan, where it may be caught. The clients'
cores (``client_core.py``) perform the steps, each on its own transport.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeAlias, TypeVar

from tether.sdk.client_http import Call, Reply

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Send:
    """A step: send ``call`` and get its reply whatever the status; ``timeout`` replaces the
    client's for this request."""

    call: Call
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    """A step: wait ``seconds`` (without blocking the event loop on the async client)."""

    seconds: float


class _Block:
    """The step of a context operation (``client_core.context_operation``) where the
    with-block runs."""


#: the with-block runs here; the plan gets back True if the block raised
BLOCK: Final = _Block()

Step: TypeAlias = Call | Send | Pause | _Block
#: a client method's logic: yields steps, gets their outcomes back, returns the result
Plan: TypeAlias = Generator[Step, Any, R]


class Backoff:
    """The pauses of a poll with a deadline: ``first`` seconds, then ``factor`` times longer
    up to ``most``, never past the deadline."""

    def __init__(self, timeout: float, first: float, factor: float, most: float) -> None:
        self._deadline = time.monotonic() + timeout
        self._next = first
        self._factor = factor
        self._most = most

    def pause(self) -> Pause | None:
        """The next pause; None once the deadline has passed."""
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            return None
        pause = Pause(min(self._next, remaining))
        self._next = min(self._next * self._factor, self._most)
        return pause


class PlanRun(Generic[R]):
    """A plan being run: hands out its steps, takes their outcomes back into it."""

    def __init__(self, plan: Plan[R]) -> None:
        self._plan = plan
        self._outcome: Any = None
        self._error: Exception | None = None
        self._raises = False
        self.result: R

    def next_step(self) -> Send | Pause | None:
        """The step to perform next; None once the plan has returned (see ``result``) or
        reached its :data:`BLOCK`."""
        outcome, error = self._outcome, self._error
        self._outcome, self._error = None, None
        try:
            step = self._plan.send(outcome) if error is None else self._plan.throw(error)
        except StopIteration as stop:
            self.result = stop.value
            return None
        if isinstance(step, _Block):
            return None
        # a bare Call wants its non-2xx reply raised
        self._raises = isinstance(step, Call)
        return Send(step) if isinstance(step, Call) else step

    def give(self, outcome: Any) -> None:
        """The outcome of the step just performed."""
        if self._raises and isinstance(outcome, Reply) and not outcome.ok:
            self._error = outcome.error()
        else:
            self._outcome = outcome

    def fail(self, error: Exception) -> None:
        """The step raised ``error``: it is raised in the plan."""
        self._error = error
