"""``dapr.proto.runtime.v1.Dapr``: each served RPC hands its request to its block's module
and answers an ApiError with Dapr's gRPC status (:mod:`.status`). The RPCs not listed here
keep the generated base's answer, UNIMPLEMENTED (docs/grpc.md lists them)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import (
    binding_pb2,
    configuration_pb2,
    dapr_pb2,
    dapr_pb2_grpc,
    invoke_pb2,
    jobs_pb2,
    lock_pb2,
    metadata_pb2,
    pubsub_pb2,
    secret_pb2,
    state_pb2,
)
from google.protobuf import empty_pb2

from tether.platform.errors import ApiError
from tether.sidecar.grpc.blocks import BindingsRpc, ConfigurationRpc, LockRpc, SecretsRpc
from tether.sidecar.grpc.invocation import InvocationRpc
from tether.sidecar.grpc.jobs import JobsRpc
from tether.sidecar.grpc.metadata import MetadataRpc
from tether.sidecar.grpc.pubsub import PubSubRpc
from tether.sidecar.grpc.state import StateRpc
from tether.sidecar.grpc.status import status_code
from tether.sidecar.grpc.subscribe import SubscribeRpc
from tether.sidecar.request import TRACE_HEADERS

T = TypeVar("T")
#: grpc.aio.ServicerContext (grpcio ships no type information)
Context = Any


@dataclass(frozen=True, slots=True)
class Rpcs:
    """The block front ends the servicer calls."""

    state: StateRpc
    pubsub: PubSubRpc
    bindings: BindingsRpc
    secrets: SecretsRpc
    configuration: ConfigurationRpc
    lock: LockRpc
    invocation: InvocationRpc
    metadata: MetadataRpc
    subscribe: SubscribeRpc
    jobs: JobsRpc


async def _answer(context: Context, call: Awaitable[T]) -> T:
    try:
        return await call
    except ApiError as exc:
        await context.abort(status_code(exc), exc.message)
        raise  # abort raises; this line is never reached


async def _empty(context: Context, call: Awaitable[None]) -> empty_pb2.Empty:
    await _answer(context, call)
    return empty_pb2.Empty()


def _trace(context: Context) -> dict[str, str]:
    """``traceparent`` / ``tracestate`` from the call's metadata (ASCII only, as over HTTP)."""
    found = dict(context.invocation_metadata() or ())
    return {h: v for h in TRACE_HEADERS
            if isinstance(v := found.get(h), str) and v and v.isascii()}


class DaprApi(dapr_pb2_grpc.DaprServicer):
    """The Dapr runtime service over the sidecar's blocks."""

    def __init__(self, rpcs: Rpcs) -> None:
        self.rpcs = rpcs

    # --- state ---------------------------------------------------------------------------
    async def GetState(self, request: state_pb2.GetStateRequest, context: Context
                       ) -> state_pb2.GetStateResponse:
        return await _answer(context, self.rpcs.state.get(request))

    async def GetBulkState(self, request: state_pb2.GetBulkStateRequest, context: Context
                           ) -> state_pb2.GetBulkStateResponse:
        return await _answer(context, self.rpcs.state.bulk_get(request))

    async def SaveState(self, request: state_pb2.SaveStateRequest, context: Context
                        ) -> empty_pb2.Empty:
        return await _empty(context, self.rpcs.state.save(request))

    async def DeleteState(self, request: state_pb2.DeleteStateRequest, context: Context
                          ) -> empty_pb2.Empty:
        return await _empty(context, self.rpcs.state.delete(request))

    async def DeleteBulkState(self, request: state_pb2.DeleteBulkStateRequest,
                              context: Context) -> empty_pb2.Empty:
        return await _empty(context, self.rpcs.state.delete_bulk(request))

    async def ExecuteStateTransaction(self, request: state_pb2.ExecuteStateTransactionRequest,
                                      context: Context) -> empty_pb2.Empty:
        return await _empty(context, self.rpcs.state.transaction(request, _trace(context)))

    async def QueryStateAlpha1(self, request: state_pb2.QueryStateRequest, context: Context
                               ) -> state_pb2.QueryStateResponse:
        return await _answer(context, self.rpcs.state.query(request))

    # --- pub/sub -------------------------------------------------------------------------
    async def PublishEvent(self, request: pubsub_pb2.PublishEventRequest, context: Context
                           ) -> empty_pb2.Empty:
        return await _empty(context, self.rpcs.pubsub.publish(request, _trace(context)))

    async def BulkPublishEvent(self, request: pubsub_pb2.BulkPublishRequest, context: Context
                               ) -> pubsub_pb2.BulkPublishResponse:
        return await _answer(context, self.rpcs.pubsub.publish_bulk(request, _trace(context)))

    async def BulkPublishEventAlpha1(self, request: pubsub_pb2.BulkPublishRequest,
                                     context: Context) -> pubsub_pb2.BulkPublishResponse:
        return await self.BulkPublishEvent(request, context)

    async def SubscribeTopicEventsAlpha1(self, request_iterator: Any, context: Context
                                         ) -> None:
        # read and written through the context: events go out while answers come in
        try:
            answering = await self.rpcs.subscribe.serve(context)
        except ApiError as exc:
            await context.abort(status_code(exc), exc.message)
        if not answering:  # Dapr's recv loop returns io.EOF, which gRPC sends as UNKNOWN
            await context.abort(grpc.StatusCode.UNKNOWN, "EOF")

    # --- bindings, secrets, configuration, lock ------------------------------------------
    async def InvokeBinding(self, request: binding_pb2.InvokeBindingRequest, context: Context
                            ) -> binding_pb2.InvokeBindingResponse:
        return await _answer(context, self.rpcs.bindings.invoke(request))

    async def GetSecret(self, request: secret_pb2.GetSecretRequest, context: Context
                        ) -> secret_pb2.GetSecretResponse:
        return await _answer(context, self.rpcs.secrets.get(request))

    async def GetBulkSecret(self, request: secret_pb2.GetBulkSecretRequest, context: Context
                            ) -> secret_pb2.GetBulkSecretResponse:
        return await _answer(context, self.rpcs.secrets.bulk(request))

    async def GetConfiguration(self, request: configuration_pb2.GetConfigurationRequest,
                               context: Context) -> configuration_pb2.GetConfigurationResponse:
        return await _answer(context, self.rpcs.configuration.get(request))

    async def GetConfigurationAlpha1(
        self, request: configuration_pb2.GetConfigurationRequest, context: Context
    ) -> configuration_pb2.GetConfigurationResponse:
        return await self.GetConfiguration(request, context)

    async def SubscribeConfiguration(
        self, request: configuration_pb2.SubscribeConfigurationRequest, context: Context
    ) -> AsyncIterator[configuration_pb2.SubscribeConfigurationResponse]:
        try:
            async for change in self.rpcs.configuration.subscribe(request):
                yield change
        except ApiError as exc:
            await context.abort(status_code(exc), exc.message)

    async def SubscribeConfigurationAlpha1(
        self, request: configuration_pb2.SubscribeConfigurationRequest, context: Context
    ) -> AsyncIterator[configuration_pb2.SubscribeConfigurationResponse]:
        # an async generator itself: grpc.aio streams only from one
        async for change in self.SubscribeConfiguration(request, context):
            yield change

    async def UnsubscribeConfiguration(
        self, request: configuration_pb2.UnsubscribeConfigurationRequest, context: Context
    ) -> configuration_pb2.UnsubscribeConfigurationResponse:
        return await _answer(context, self.rpcs.configuration.unsubscribe(request))

    async def UnsubscribeConfigurationAlpha1(
        self, request: configuration_pb2.UnsubscribeConfigurationRequest, context: Context
    ) -> configuration_pb2.UnsubscribeConfigurationResponse:
        return await self.UnsubscribeConfiguration(request, context)

    async def TryLockAlpha1(self, request: lock_pb2.TryLockRequest, context: Context
                            ) -> lock_pb2.TryLockResponse:
        return await _answer(context, self.rpcs.lock.try_lock(request))

    async def UnlockAlpha1(self, request: lock_pb2.UnlockRequest, context: Context
                           ) -> lock_pb2.UnlockResponse:
        return await _answer(context, self.rpcs.lock.unlock(request))

    # --- jobs (Dapr 1.18 made them stable; the SDK falls back to Alpha1 names) ----------
    async def ScheduleJob(self, request: jobs_pb2.ScheduleJobRequest, context: Context
                          ) -> jobs_pb2.ScheduleJobResponse:
        await _answer(context, self.rpcs.jobs.schedule(request))
        return jobs_pb2.ScheduleJobResponse()

    async def ScheduleJobAlpha1(self, request: jobs_pb2.ScheduleJobRequest, context: Context
                                ) -> jobs_pb2.ScheduleJobResponse:
        return await self.ScheduleJob(request, context)

    async def GetJob(self, request: jobs_pb2.GetJobRequest, context: Context
                     ) -> jobs_pb2.GetJobResponse:
        return await _answer(context, self.rpcs.jobs.get(request))

    async def GetJobAlpha1(self, request: jobs_pb2.GetJobRequest, context: Context
                           ) -> jobs_pb2.GetJobResponse:
        return await self.GetJob(request, context)

    async def DeleteJob(self, request: jobs_pb2.DeleteJobRequest, context: Context
                        ) -> jobs_pb2.DeleteJobResponse:
        await _answer(context, self.rpcs.jobs.delete(request))
        return jobs_pb2.DeleteJobResponse()

    async def DeleteJobAlpha1(self, request: jobs_pb2.DeleteJobRequest, context: Context
                              ) -> jobs_pb2.DeleteJobResponse:
        return await self.DeleteJob(request, context)

    # --- invocation ----------------------------------------------------------------------
    async def InvokeService(self, request: invoke_pb2.InvokeServiceRequest, context: Context
                            ) -> common_pb2.InvokeResponse:
        return await _answer(context, self.rpcs.invocation.invoke(request))

    # --- metadata and shutdown -----------------------------------------------------------
    async def GetMetadata(self, request: metadata_pb2.GetMetadataRequest, context: Context
                          ) -> metadata_pb2.GetMetadataResponse:
        return self.rpcs.metadata.get()

    async def SetMetadata(self, request: metadata_pb2.SetMetadataRequest, context: Context
                          ) -> empty_pb2.Empty:
        return await _empty(context, _run(self.rpcs.metadata.set, request))

    async def Shutdown(self, request: dapr_pb2.ShutdownRequest, context: Context
                       ) -> empty_pb2.Empty:
        # the callback only schedules the stop: the answer still goes out
        return await _empty(context, self.rpcs.metadata.shutdown())


async def _run(fn: Callable[[T], None], arg: T) -> None:
    fn(arg)
