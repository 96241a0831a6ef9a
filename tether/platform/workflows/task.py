"""Tasks a workflow yields: one durable step each, or a when_all / when_any of several.

A task completes at most once, from a history event (never from the clock or I/O), so a
replay completes the same tasks in the same order."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from tether.platform.workflows.errors import WorkflowError
from tether.platform.workflows.retry import RetryPolicy

T = TypeVar("T")


class Task(Generic[T]):
    """A step's future. Dapr/durabletask names: is_complete, is_failed, get_result(),
    get_exception()."""

    def __init__(self) -> None:
        self._complete = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._parents: list[CompositeTask[Any]] = []

    @property
    def is_complete(self) -> bool:
        return self._complete

    @property
    def is_failed(self) -> bool:
        return self._exception is not None

    def get_result(self) -> T:
        if not self._complete:
            raise WorkflowError("the task is not complete")
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[no-any-return]

    def get_exception(self) -> BaseException:
        if self._exception is None:
            raise WorkflowError("the task did not fail")
        return self._exception

    def __await__(self) -> Generator[Task[T], Any, T]:
        """`await task` in an async workflow: the executor drives the coroutine like a
        generator, so the task goes out exactly as `yield task` would."""
        result = yield self
        return result  # type: ignore[no-any-return]

    def _finish(self, result: Any = None, exception: BaseException | None = None) -> None:
        if self._complete:
            return
        self._complete = True
        self._result = result
        self._exception = exception
        for parent in self._parents:
            parent._on_child(self)


class CompletableTask(Task[T]):
    """An activity, timer, child workflow or external event wait."""

    label = "an external event"

    def complete(self, result: Any) -> None:
        self._finish(result=result)

    def fail(self, exception: BaseException) -> None:
        self._finish(exception=exception)


class RetryableTask(CompletableTask[T]):
    """An activity or child workflow with a RetryPolicy: it may span several attempts, each a
    fresh task id, with a durable timer between them."""

    def __init__(self, policy: RetryPolicy, first_attempt_at: datetime) -> None:
        super().__init__()
        self.policy = policy
        self.first_attempt_at = first_attempt_at
        self.attempt = 1
        self.template: Any = None  # the action each attempt repeats (set by the context)


class CompositeTask(Task[T]):
    def __init__(self, tasks: Sequence[Task[Any]]) -> None:
        super().__init__()
        self.children = list(tasks)
        for child in self.children:
            if not isinstance(child, Task):
                raise TypeError(f"when_all/when_any take tasks, got {type(child).__name__}")
            child._parents.append(self)

    def _on_child(self, child: Task[Any]) -> None:
        raise NotImplementedError


class WhenAllTask(CompositeTask[list[Any]]):
    """Completes with the list of results once every task completed; fails as soon as one
    fails (with that task's exception), as durabletask does. With return_exceptions (the
    async context's gather), a failure takes its place in the list instead."""

    def __init__(self, tasks: Sequence[Task[Any]], return_exceptions: bool = False) -> None:
        self.return_exceptions = return_exceptions
        super().__init__(tasks)
        self._done = 0
        for child in self.children:
            if child.is_complete:
                self._on_child(child)
        if not self.children:
            self._finish(result=[])

    def _on_child(self, child: Task[Any]) -> None:
        if self._complete:
            return
        if child.is_failed and not self.return_exceptions:
            self._finish(exception=child.get_exception())
            return
        self._done += 1  # O(1) per completion: a fan-in of n tasks costs O(n)
        if self._done == len(self.children):
            self._finish(result=[c._exception if c._exception is not None else c._result
                                 for c in self.children])


class WhenAnyTask(CompositeTask[Task[Any]]):
    """Completes with the first task that completes (successfully or not)."""

    def __init__(self, tasks: Sequence[Task[Any]]) -> None:
        super().__init__(tasks)
        if not self.children:
            raise ValueError("when_any needs at least one task")
        for child in self.children:
            if child.is_complete:
                self._finish(result=child)
                break

    def _on_child(self, child: Task[Any]) -> None:
        self._finish(result=child)


def when_all(tasks: Sequence[Task[Any]]) -> WhenAllTask:
    """A task that completes when all `tasks` complete; its result is the list of results."""
    return WhenAllTask(tasks)


def when_any(tasks: Sequence[Task[Any]]) -> WhenAnyTask:
    """A task that completes when any of `tasks` completes; its result is that task."""
    return WhenAnyTask(tasks)
