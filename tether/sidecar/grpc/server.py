"""The gRPC server of one sidecar: ``grpc.aio`` on ``--dapr-grpc-port`` (DAPR_GRPC_PORT), on
the same listen addresses as the HTTP API, with the API token checked as over HTTP."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from dapr.proto.runtime.v1 import dapr_pb2_grpc

from tether.platform.bindings import BindingsService
from tether.platform.configuration.service import ConfigurationService
from tether.platform.errors import TetherError
from tether.platform.invocation.service import InvocationService
from tether.platform.jobs import JobsService
from tether.platform.lock.service import LockService
from tether.platform.pubsub import Publisher
from tether.platform.secrets.service import SecretsService
from tether.platform.state.service import StateService
from tether.sidecar.app import MetadataApi
from tether.sidecar.grpc.blocks import BindingsRpc, ConfigurationRpc, LockRpc, SecretsRpc
from tether.sidecar.grpc.invocation import InvocationRpc
from tether.sidecar.grpc.jobs import JobsRpc
from tether.sidecar.grpc.metadata import MetadataRpc
from tether.sidecar.grpc.pubsub import PubSubRpc
from tether.sidecar.grpc.servicer import DaprApi, Rpcs
from tether.sidecar.grpc.state import StateRpc
from tether.sidecar.grpc.subscribe import SubscribeRpc
from tether.workers.app_channel import API_TOKEN_HEADER
from tether.workers.streaming import StreamingSubscriptions

log = logging.getLogger(__name__)

#: Dapr's default gRPC message limit (4 MiB), both ways
MAX_MESSAGE_SIZE = 4 * 1024 * 1024


class GrpcServerError(TetherError):
    """The gRPC API cannot listen on any of its addresses."""


@dataclass(frozen=True, slots=True)
class GrpcServices:
    """The services the HTTP API's blocks hold, handed to the gRPC API as they are."""

    state: StateService
    publisher: Publisher
    bindings: BindingsService
    secrets: SecretsService
    configuration: ConfigurationService
    lock: LockService
    invocation: InvocationService
    metadata: MetadataApi
    streams: StreamingSubscriptions
    jobs: JobsService

    def rpcs(self) -> Rpcs:
        return Rpcs(
            state=StateRpc(self.state), pubsub=PubSubRpc(self.publisher),
            bindings=BindingsRpc(self.bindings), secrets=SecretsRpc(self.secrets),
            configuration=ConfigurationRpc(self.configuration), lock=LockRpc(self.lock),
            invocation=InvocationRpc(self.invocation), metadata=MetadataRpc(self.metadata),
            subscribe=SubscribeRpc(self.streams), jobs=JobsRpc(self.jobs),
        )


class _TokenCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpcio is untyped
    """Every call must carry ``dapr-api-token`` metadata equal to the token (UNAUTHENTICATED
    otherwise), as Dapr's gRPC API does when DAPR_API_TOKEN is set; compared in constant
    time, as the HTTP middleware does."""

    def __init__(self, token: str) -> None:
        self.expected = token.encode()

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        given = next((v for k, v in details.invocation_metadata or ()
                      if k == API_TOKEN_HEADER), "")
        given_bytes = given if isinstance(given, bytes) else str(given).encode(
            "utf-8", "surrogatepass")
        if hmac.compare_digest(given_bytes, self.expected):
            return await continuation(details)
        handler = await continuation(details)
        return _refusal(handler)


async def _deny(request: Any, context: Any) -> None:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "invalid api token")


def _refusal(handler: Any) -> Any:
    """A handler of the same kind (unary or streaming) as ``handler`` that refuses."""
    if handler is None:  # an unknown method: UNIMPLEMENTED either way
        return None
    codec = {"request_deserializer": handler.request_deserializer,
             "response_serializer": handler.response_serializer}
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_deny, **codec)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_deny, **codec)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(_deny, **codec)
    return grpc.stream_stream_rpc_method_handler(_deny, **codec)


class GrpcServer:
    """Dapr's gRPC API of one sidecar."""

    def __init__(self, services: GrpcServices, api_token: str | None = None) -> None:
        self.services = services
        self.api_token = api_token
        self._server: Any = None

    async def start(self, addresses: Sequence[str], port: int) -> list[str]:
        """Listen on ``port`` of each address (one that fails is skipped, as for HTTP, if
        another serves); the endpoints served. GrpcServerError when none can."""
        interceptors = [_TokenCheck(self.api_token)] if self.api_token else []
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_SIZE),
                   ("grpc.max_send_message_length", MAX_MESSAGE_SIZE),
                   ("grpc.so_reuseport", 0)]
        server = grpc.aio.server(interceptors=interceptors, options=options)
        dapr_pb2_grpc.add_DaprServicer_to_server(  # type: ignore[no-untyped-call]
            DaprApi(self.services.rpcs()), server
        )
        served: list[str] = []
        failed: list[str] = []
        for address in addresses:
            endpoint = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
            try:
                bound = server.add_insecure_port(endpoint)
            except RuntimeError as exc:  # grpcio >= 1.5x raises; older ones answer 0
                failed.append(f"{endpoint}: {exc}")
                continue
            if bound:
                served.append(endpoint)
            else:
                failed.append(f"{endpoint}: cannot bind")
        if not served:
            await server.stop(None)
            raise GrpcServerError(f"cannot serve the gRPC API on {'; '.join(failed)}")
        for failure in failed:
            log.warning("the gRPC API cannot listen on %s", failure)
        await server.start()
        self._server = server
        return served

    async def stop(self, grace: float = 1.0) -> None:
        """Stop taking calls; those in flight get ``grace`` seconds to finish."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
