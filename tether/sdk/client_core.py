"""The two clients' cores and the methods written once for both.

:func:`operation` makes a plan (``client_plan.py``) a method of both clients: a blocking one
on :class:`SyncCore` (one kept-alive connection) and a coroutine on
:class:`AsyncCore` (an aiohttp session). Each core performs a plan's steps on its transport;
nothing else differs between :class:`tether.Client` and :class:`tether.AsyncClient`.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ssl
import threading
import time
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from http import HTTPStatus
from types import MethodType, TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from multidict import CIMultiDict

from tether.platform.http1 import BlockingConnection, Http1Pool
from tether.sdk.client_errors import SidecarUnavailableError
from tether.sdk.client_http import Call, Reply
from tether.sdk.client_plan import Pause, Plan, PlanRun
from tether.sdk.client_settings import ClientSettings, resolve_settings

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")
A = TypeVar("A")


class ClientBase:
    """What the block mixins see of either client: its settings."""

    def __init__(
        self,
        address: str | None = None,
        *,
        api_token: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.settings: ClientSettings = resolve_settings(
            address, api_token=api_token, timeout=timeout
        )
        self._setup()

    def _setup(self) -> None:
        """Set up the core's transport state (each core fills this in)."""

    @property
    def address(self) -> str:
        return self.settings.base_url

    def _unavailable(self, exc: object) -> SidecarUnavailableError:
        return SidecarUnavailableError(
            f"cannot reach the sidecar at {self.address}: {exc} ({_HINTS[self.settings.source]})"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"


#: how to point a client elsewhere, by where its address came from
_HINTS = {
    "given": "the address passed to the client",
    "DAPR_HTTP_ENDPOINT": "from DAPR_HTTP_ENDPOINT",
    "TETHER_HTTP_PORT": "the port from TETHER_HTTP_PORT",
    "DAPR_HTTP_PORT": "the port from DAPR_HTTP_PORT; is the sidecar's --dapr-http-port the same?",
    "default": "the default port: pass address=... or set DAPR_HTTP_PORT to the sidecar's "
               "--dapr-http-port",
}

def _reason(status: int) -> str:
    """The standard reason phrase (the lean parser does not keep the server's)."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class SyncCore(ClientBase):
    """The blocking core: plans run on one kept-alive HTTP/1.1 connection
    (:class:`tether.platform.http1.BlockingConnection`), one request at a time (a lock makes
    a client safe to share between threads)."""

    def _setup(self) -> None:
        self._connection: BlockingConnection | None = None
        self._lock = threading.Lock()

    def _drive(self, run: PlanRun[Any]) -> None:
        """Perform the plan's steps until it returns or reaches its BLOCK."""
        while (step := run.next_step()) is not None:
            try:
                if isinstance(step, Pause):
                    time.sleep(step.seconds)
                else:
                    run.give(self._send(step.call, step.timeout))
            except Exception as exc:  # raised in the plan, which may catch it
                run.fail(exc)

    def _connect(self) -> BlockingConnection:
        s = self.settings
        context = ssl.create_default_context() if s.scheme == "https" else None
        return BlockingConnection(s.host, s.port, ssl_context=context)

    def _send(self, call: Call, timeout: float | None = None) -> Reply:
        headers = {**self.settings.headers(), **call.headers}
        target = call.target(self.settings.base_path)
        with self._lock:
            connection = self._connection or self._connect()
            self._connection = connection
            try:
                answer = connection.request(call.method, target, call.body or b"", headers,
                                            timeout=timeout or self.settings.timeout)
            except OSError as exc:  # refused, reset, timed out, a broken answer
                raise self._unavailable(exc) from None
        return Reply(answer.status, _reason(answer.status), answer.body,
                     CIMultiDict(answer.headers))

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close the kept-alive connection (the next call opens a new one)."""
        with self._lock:
            self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncCore(ClientBase):
    """The asyncio core: plans run on kept-alive HTTP/1.1 connections
    (:class:`tether.platform.http1.Http1Pool`), opened on first use inside the running loop
    (use a client from one event loop)."""

    def _setup(self) -> None:
        self._pool: Http1Pool | None = None

    async def _drive(self, run: PlanRun[Any]) -> None:
        """Perform the plan's steps until it returns or reaches its BLOCK."""
        while (step := run.next_step()) is not None:
            try:
                if isinstance(step, Pause):
                    await asyncio.sleep(step.seconds)
                else:
                    run.give(await self._send(step.call, step.timeout))
            except Exception as exc:  # raised in the plan, which may catch it
                run.fail(exc)

    def _open(self) -> Http1Pool:
        if self._pool is None or self._pool.closed:
            s = self.settings
            context = ssl.create_default_context() if s.scheme == "https" else None
            self._pool = Http1Pool(s.host, s.port, ssl_context=context)
        return self._pool

    async def _send(self, call: Call, timeout: float | None = None) -> Reply:
        pool = self._open()
        s = self.settings
        headers = {**s.headers(), **call.headers}
        try:
            answer = await pool.request(call.method, call.target(s.base_path),
                                        call.body or b"", headers, timeout=timeout or s.timeout)
        except OSError as exc:  # refused, reset, timed out, a broken answer
            raise self._unavailable(repr(exc)) from None
        return Reply(answer.status, _reason(answer.status), answer.body,
                     CIMultiDict(answer.headers))

    async def close(self) -> None:
        """Close the kept-alive connections."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# --- methods written once ------------------------------------------------------------------
class ClientMethod(Generic[P, S, A]):
    """A method of both clients: ``blocking`` serves :class:`SyncCore`, ``asynchronous``
    :class:`AsyncCore` (each takes the client first)."""

    def __init__(self, blocking: Callable[Concatenate[SyncCore, P], S],
                 asynchronous: Callable[Concatenate[AsyncCore, P], A]) -> None:
        self.__doc__ = blocking.__doc__
        self._blocking = blocking
        self._asynchronous = asynchronous

    @overload
    def __get__(
        self, client: None, owner: type[SyncCore]
    ) -> Callable[Concatenate[SyncCore, P], S]: ...
    @overload
    def __get__(
        self, client: None, owner: type[AsyncCore]
    ) -> Callable[Concatenate[AsyncCore, P], A]: ...
    @overload
    def __get__(self, client: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, client: SyncCore, owner: type[Any]) -> Callable[P, S]: ...
    @overload
    def __get__(self, client: AsyncCore, owner: type[Any]) -> Callable[P, A]: ...
    def __get__(self, client: ClientBase | None, owner: type[Any]) -> Any:
        if client is None:  # on a client class, the function (what help() shows)
            if issubclass(owner, AsyncCore):
                return self._asynchronous
            return self._blocking if issubclass(owner, SyncCore) else self
        method = self._asynchronous if isinstance(client, AsyncCore) else self._blocking
        return MethodType(method, client)


def _like(function: Callable[P, R], plan: Callable[..., Any], returns: object) -> Callable[P, R]:
    """``function`` with the name, docstring and arguments of ``plan``, returning ``returns``
    (for help() and inspect.signature())."""
    functools.update_wrapper(function, plan)
    signature = inspect.signature(plan).replace(return_annotation=returns)
    function.__dict__["__signature__"] = signature
    return function


def operation(
    plan: Callable[Concatenate[Any, P], Plan[R]],
) -> ClientMethod[P, R, Coroutine[Any, Any, R]]:
    """``plan`` (a generator method) as a method of both clients: it returns the plan's
    result on :class:`tether.Client` and is a coroutine on :class:`tether.AsyncClient`."""

    def blocking(client: SyncCore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        run = PlanRun(plan(client, *args, **kwargs))
        client._drive(run)
        return run.result

    async def asynchronous(client: AsyncCore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        run = PlanRun(plan(client, *args, **kwargs))
        await client._drive(run)
        return run.result

    # the plan is annotated "Plan[T]" (a string: the modules use postponed annotations);
    # the method returns T
    planned = str(plan.__annotations__.get("return", ""))
    returns = planned[5:-1] if planned.startswith("Plan[") else inspect.Signature.empty
    return ClientMethod(_like(blocking, plan, returns), _like(asynchronous, plan, returns))


def context_operation(
    plan: Callable[Concatenate[Any, P], Plan[None]],
) -> ClientMethod[P, AbstractContextManager[None], AbstractAsyncContextManager[None]]:
    """``plan`` as a method returning a context manager (``with`` on :class:`tether.Client`,
    ``async with`` on :class:`tether.AsyncClient`): the plan's steps up to its
    :data:`BLOCK` run on entering the block, the rest on leaving it."""

    def blocking(client: SyncCore, /, *args: P.args,
                 **kwargs: P.kwargs) -> AbstractContextManager[None]:
        return _Held(client, PlanRun(plan(client, *args, **kwargs)))

    def asynchronous(client: AsyncCore, /, *args: P.args,
                     **kwargs: P.kwargs) -> AbstractAsyncContextManager[None]:
        return _AsyncHeld(client, PlanRun(plan(client, *args, **kwargs)))

    return ClientMethod(_like(blocking, plan, "AbstractContextManager[None]"),
                        _like(asynchronous, plan, "AbstractAsyncContextManager[None]"))


class _Held(AbstractContextManager[None]):
    """A context operation on :class:`SyncCore`: the plan runs up to its BLOCK on entry,
    and on exit on to its end, told whether the block raised."""

    def __init__(self, client: SyncCore, run: PlanRun[None]) -> None:
        self._client, self._run = client, run

    def __enter__(self) -> None:
        self._client._drive(self._run)

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._run.give(exc_type is not None)
        self._client._drive(self._run)


class _AsyncHeld(AbstractAsyncContextManager[None]):
    """:class:`_Held` on :class:`AsyncCore`."""

    def __init__(self, client: AsyncCore, run: PlanRun[None]) -> None:
        self._client, self._run = client, run

    async def __aenter__(self) -> None:
        await self._client._drive(self._run)

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._run.give(exc_type is not None)
        await self._client._drive(self._run)
