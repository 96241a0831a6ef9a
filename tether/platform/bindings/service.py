"""The output side of the bindings block for any front end: Dapr's ``InvokeBinding``.

A call names a binding, an operation, data and metadata. Synchronous calls run on the
component at once, under its outbound resiliency policy, and answer with its data and
metadata. An async call (``metadata.async=true`` / ``tether-binding-async``) is published
on ``tether.binding.out.<app-id>`` and acknowledged once the broker holds it; the app's
sidecars run it from there with pub/sub's retries and dead letters
(:mod:`tether.workers.bindings`), so a create or exec nobody waits on is never lost.

Errors, in Dapr's shape with ``ERR_INVOKE_OUTPUT_BINDING``: an unknown binding, or one
with no output side, is 404 (Dapr: 500); an operation the component does not support or a
request it refuses is 400 (Dapr: 500; the caller's mistake is not a server error); what
the request names not existing is 404; the component's server failing is 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from time import perf_counter

from tether.brokers import BrokerError
from tether.platform import errors, metrics, tracing
from tether.platform.bindings.binding import (
    Binding,
    BindingError,
    BindingFailedError,
    BindingNotFoundError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
    OutputBinding,
)
from tether.platform.bindings.messages import OutputCall, output_topic
from tether.platform.bindings.registry import build_bindings
from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.errors import ApiError
from tether.platform.pubsub import PubSubRegistry, runtime_pubsub
from tether.platform.resiliency import Policy, ResiliencyError
from tether.platform.resiliency.policy import no_policy

log = logging.getLogger(__name__)

BLOCK = "bindings"


def _failed(name: str, problem: object, status: int = 500) -> ApiError:
    return ApiError(status, errors.INVOKE_OUTPUT_BINDING,
                    f"error invoking output binding {name}: {problem}")


def _permanent(exc: BaseException) -> bool:
    """A refused request or a missing object: no retry changes the answer."""
    return isinstance(exc, BindingRequestError | BindingNotFoundError)


class BindingsService:
    """The app's bindings: output sides opened and closed with the sidecar, input sides
    handed to the input worker (:attr:`inputs`)."""

    def __init__(
        self,
        app_id: str,
        bindings: Mapping[str, Binding],
        *,
        policies: Mapping[str, Policy] | None = None,
        inbound: Mapping[str, Policy] | None = None,
        pubsub: PubSubRegistry | None = None,
        pubsub_name: str | None = None,
    ) -> None:
        self.app_id = app_id
        self.bindings = dict(bindings)
        self._policies = dict(policies or {})
        #: each input binding's inbound resiliency policy (how its deliveries are retried)
        self.inbound = dict(inbound or {})
        self._pubsub = pubsub
        #: the pub/sub component binding events travel on (None: the app has none)
        self.pubsub_name = pubsub_name
        self._started: list[OutputBinding] = []

    @classmethod
    def from_context(cls, context: BlockContext) -> BindingsService:
        """The service over the app's ``bindings.*`` components; BindingConfigError names a
        bad one (an input binding with no pub/sub component to carry its events, too)."""
        bindings = build_bindings(context.components)
        pubsub_name = runtime_pubsub(context.pubsub)
        inputs = [b.name for b in bindings.values() if b.input is not None]
        if inputs and pubsub_name is None:
            raise BlockConfigError(
                f"input binding {inputs[0]!r} needs a pub/sub component to carry its events "
                f"(app {context.app_id!r} has none)"
            )
        policies = {
            name: context.resiliency.component_outbound(name, BLOCK) for name in bindings
        }
        inbound = {
            name: context.resiliency.component_inbound(name, BLOCK) for name in bindings
        }
        return cls(context.app_id, bindings, policies=policies, inbound=inbound,
                   pubsub=context.pubsub, pubsub_name=pubsub_name)

    @property
    def inputs(self) -> list[Binding]:
        return [b for b in self.bindings.values() if b.input is not None]

    @property
    def outputs(self) -> list[Binding]:
        return [b for b in self.bindings.values() if b.output is not None]

    async def start(self) -> None:
        """Open every output side; BindingFailedError naming the one that cannot start
        (the sidecar does not start, as Dapr's does not with a failing component)."""
        for binding in self.outputs:
            assert binding.output is not None
            try:
                await binding.output.start()
            except BindingError as exc:
                await self.close()
                raise BindingFailedError(f"binding {binding.name!r}: {exc}") from exc
            self._started.append(binding.output)

    async def close(self) -> None:
        started, self._started = self._started, []
        for output in started:
            try:
                await output.close()
            except Exception:  # one binding failing to close must not keep others open
                log.exception("closing an output binding failed")

    def _output(self, name: str, operation: str) -> OutputBinding:
        binding = self.bindings.get(name)
        if binding is None or binding.output is None:
            raise _failed(name, f"couldn't find output binding {name}", 404)
        if not operation:
            raise _failed(name, "operation is required", 400)
        if operation not in binding.output.operations:
            supported = ", ".join(sorted(binding.output.operations))
            raise _failed(name, f"binding {name} does not support operation {operation} "
                                f"(supported: {supported})", 400)
        return binding.output

    async def invoke(self, name: str, request: BindingRequest,
                     trace: Mapping[str, str] | None = None) -> BindingResponse:
        """Run one operation now; ApiError in Dapr's shape when it fails. ``trace``: the
        W3C context of the call (its span's parent when the app traces)."""
        try:
            return await self.call(name, request, trace)
        except BindingRequestError as exc:
            raise _failed(name, exc, 400) from exc
        except BindingNotFoundError as exc:
            raise _failed(name, exc, 404) from exc
        except BindingError as exc:
            raise _failed(name, exc) from exc

    async def call(self, name: str, request: BindingRequest,
                   trace: Mapping[str, str] | None = None) -> BindingResponse:
        """Run one operation under the binding's outbound policy; raises ApiError for an
        unknown binding or operation, a :class:`BindingError` when the component fails
        (what the async worker needs to tell a retry from a dead letter)."""
        output = self._output(name, request.operation)
        tracer = tracing.tracer(self.app_id)
        if tracer is None:
            return await self._call(name, output, request)
        attributes = {"dapr.binding": name, "dapr.binding.operation": request.operation,
                      "dapr.component_type": self.bindings[name].type}
        with tracer.span(f"binding {name} {request.operation}", tracing.CLIENT, trace,
                         attributes):
            return await self._call(name, output, request)

    async def _call(self, name: str, output: OutputBinding,
                    request: BindingRequest) -> BindingResponse:
        policy = self._policies.get(name) or no_policy(name)
        start = perf_counter()
        success = "false"
        try:
            response = await policy.call(lambda: output.invoke(request), permanent=_permanent)
            success = "true"
            return response
        except ResiliencyError as exc:  # a timeout or an open breaker: the component failed
            raise BindingFailedError(str(exc)) from exc
        except BindingError:
            raise
        except Exception as exc:  # a component's bug must not become a bare 500
            log.exception("output binding %r failed on %s", name, request.operation)
            raise BindingFailedError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            metrics.OUTPUT_BINDING.record((self.app_id, name, request.operation, success),
                                          perf_counter() - start)

    async def invoke_async(self, name: str, request: BindingRequest,
                           key: str | None = None,
                           trace: Mapping[str, str] | None = None) -> str:
        """Accept the call durably (it runs later, retried, dead-lettered when it keeps
        failing); the id of the event that carries it."""
        self._output(name, request.operation)
        if self._pubsub is None or self.pubsub_name is None:
            raise _failed(name, "async calls need a pub/sub component to travel on", 400)
        # the call's span continues the caller's trace when it runs
        event = OutputCall(name, request).to_event(self.app_id, key,
                                                   tracing.ensure(trace) if trace else None)
        try:
            broker = await self._pubsub.broker(self.pubsub_name)
            await broker.publish(output_topic(self.app_id), event)
        except BrokerError as exc:
            raise _failed(name, f"pub/sub {self.pubsub_name!r} did not accept the async "
                                f"call: {exc}", 503) from exc
        return event.id
