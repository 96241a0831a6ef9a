"""One sidecar: the app's components loaded and the HTTP API served on a port."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from tether.platform import tracing
from tether.platform.actors import ActorService
from tether.platform.bindings import BindingsService
from tether.platform.blocks import BlockContext
from tether.platform.components import Component, Subscription, load_resources
from tether.platform.components.appconfig import load_app_configuration
from tether.platform.components.registry import describe
from tether.platform.env import app_api_token
from tether.platform.errors import ConfigError, TetherError
from tether.platform.invocation.access import AccessControl
from tether.platform.jobs import JobsService
from tether.platform.metrics.exposition import MetricsServer
from tether.platform.pubsub import Publisher, PubSubRegistry, runtime_pubsub
from tether.platform.resiliency import Resiliency
from tether.platform.secrets import resolve_app_secrets
from tether.platform.tracing import TracingConfig, from_spec
from tether.sidecar import create_app
from tether.sidecar.actors import ActorsApi
from tether.sidecar.api_block import ApiBlock
from tether.sidecar.app import METADATA
from tether.sidecar.bindings import BindingsApi
from tether.sidecar.blocks import COMPONENT_TYPES, PROCESS_LOCAL_TYPES, build_blocks
from tether.sidecar.configuration import ConfigurationApi
from tether.sidecar.forward import MainProcess
from tether.sidecar.invoke import InvokeApi
from tether.sidecar.jobs import JobsApi
from tether.sidecar.lock import LockApi
from tether.sidecar.secrets import SecretsApi
from tether.sidecar.state import StateApi
from tether.workers.actors import ActorHost, fetch_actor_config
from tether.workers.async_invoke import AsyncInvocations, AsyncInvokeChannel
from tether.workers.bindings import BindingChannel, InputBindings, OutputCalls
from tether.workers.delivery import DeliveryOptions
from tether.workers.invocation import InvocationWorker
from tether.workers.jobs import JobChannel, JobTriggers
from tether.workers.scheduler import Schedulers
from tether.workers.streaming import StreamingSubscriptions
from tether.workers.subscriptions import AppSubscriptions, SubscriptionError

if TYPE_CHECKING:
    from tether.sidecar.grpc import GrpcServer

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"


class SidecarError(TetherError):
    """The sidecar cannot start; the message says why (a bad resource file, a busy port)."""


@dataclass(frozen=True, slots=True)
class Sharing:
    """One of the processes of a sidecar whose HTTP API several processes serve on a shared
    port (SO_REUSEPORT; ``tether run --api-processes N``, docs/running.md).

    The ``main`` process does everything a lone sidecar does (subscriptions, schedulers,
    the app channel, the sidecar-wide metadata) and serves its API on the private Unix
    socket ``socket`` as well; an API process serves the API only, and forwards there what
    only the main process can answer (tether/sidecar/forward.py).
    """

    socket: str
    main: bool


class Sidecar:
    """Serves the Dapr HTTP API for ``app_id`` on ``http_port`` until :meth:`stop`.

    It listens on each of ``listen_addresses`` (Dapr's ``--dapr-listen-addresses``); with an
    ``api_token`` (DAPR_API_TOKEN) every call but the health probes must carry it.
    ``shutdown_requested`` is set by ``POST /v1.0/shutdown``; whoever runs the sidecar
    watches it and stops everything (the sidecar does not stop itself mid-response).
    With ``sharing`` it is one process of several serving the port (:class:`Sharing`).
    """

    def __init__(
        self,
        app_id: str,
        http_port: int,
        resources_paths: Sequence[str | Path] = (),
        listen_addresses: Sequence[str] = (DEFAULT_HOST,),
        config_file: str | Path | None = None,
        app_port: int | None = None,
        api_token: str | None = None,
        sharing: Sharing | None = None,
        metrics_port: int | None = None,
        grpc_port: int | None = None,
    ) -> None:
        self.app_id = app_id
        #: where Dapr's gRPC API is served (the main process only); None: not served
        self.grpc_port = grpc_port
        self._grpc: GrpcServer | None = None
        #: the app's streaming subscriptions (SubscribeTopicEventsAlpha1 over gRPC)
        self._streams: StreamingSubscriptions | None = None
        #: where blocks push to the app (configuration changes); None: no app channel
        self.app_port = app_port
        self.config_file = config_file
        self.http_port = http_port
        self.resources_paths = list(resources_paths)
        self.listen_addresses = tuple(listen_addresses)
        self.api_token = api_token
        self.sharing = sharing
        self.shutdown_requested = asyncio.Event()
        #: where this app's GET /metrics is served (the main process only); None: nowhere
        self.metrics_port = metrics_port
        self._metrics: MetricsServer | None = None
        self._runner: web.AppRunner | None = None
        self._registry: PubSubRegistry | None = None
        self._declarative: tuple[Subscription, ...] = ()
        #: the app's Resiliency policies, loaded with its components
        self.resiliency = Resiliency()
        self.subscriptions: AppSubscriptions | None = None
        self._invocations: InvocationWorker | None = None
        self._async_calls: AsyncInvocations | None = None
        self._schedulers: Schedulers | None = None
        #: the bindings block's service (None: the app has no bindings), its input
        #: readers and deliveries, and the worker of its async output calls
        self._bindings: BindingsService | None = None
        self._inputs: InputBindings | None = None
        self._output_calls: OutputCalls | None = None
        #: the actors block's service, and the actor types this sidecar hosts for its app
        self._actors: ActorService | None = None
        self._actor_host: ActorHost | None = None
        #: the jobs block's service and the worker firing its triggers on the app
        self._jobs: JobsService | None = None
        self._job_triggers: JobTriggers | None = None
        self._main: MainProcess | None = None
        #: the listen addresses it serves on, once started (a failing one is skipped)
        self.listening: tuple[str, ...] = ()
        #: who may call this app's methods (the Configuration's accessControl); None: anyone
        self._access: AccessControl | None = None
        #: where this app's spans go (None: it does not trace), known once started
        self.tracing: TracingConfig | None = None

    @property
    def api_only(self) -> bool:
        """An API process of a shared sidecar: no subscriptions, schedulers or app channel."""
        return self.sharing is not None and not self.sharing.main

    async def start(self) -> None:
        try:
            resources = load_resources(
                self.resources_paths or None, self.app_id, types=COMPONENT_TYPES
            )
            config = load_app_configuration(self.config_file) if self.config_file else {}
            # spec.tracing, else the OTEL_* variables, as daprd (docs/observability.md)
            self.tracing = from_spec(config.get("tracing"))
            # secretKeyRef values resolved first: the registry and the blocks see plain strings
            components = await resolve_app_secrets(resources.components_for(self.app_id))
            if self.sharing is not None:
                _check_shareable(components)
            registry = PubSubRegistry(components)
            self._declarative = resources.subscriptions_for(self.app_id)
            self.resiliency = Resiliency.load(resources.others, self.app_id)
            self._access = AccessControl.from_configuration(config)
            blocks = build_blocks(
                BlockContext(
                    self.app_id, components, registry, app_port=self.app_port,
                    configuration=config, resiliency=self.resiliency,
                )
            )
            self._actors = next((b.service for b in blocks if isinstance(b, ActorsApi)), None)
            self._bindings = next(
                (b.service for b in blocks
                 if isinstance(b, BindingsApi) and b.service.bindings), None
            )
            self._jobs = next(
                (b.service for b in blocks if isinstance(b, JobsApi) and b.service.usable), None
            )
        except ConfigError as exc:
            raise SidecarError(f"cannot load the components of app {self.app_id!r}: {exc}") from exc
        if self.api_only:
            assert self.sharing is not None
            self._main = MainProcess(self.sharing.socket)
        tracing.configure(self.app_id, self.tracing)  # before the app: its middleware
        app = create_app(
            registry,
            app_id=self.app_id,
            components=components,
            on_shutdown=self.shutdown_requested.set,
            subscriptions=self._subscriptions_metadata,
            blocks=blocks,
            actors=self._actors_metadata,
            api_token=self.api_token,
            forward=None if self._main is None else self._main.forward,
            resiliency=self.resiliency,
            http_metrics=self.metrics_port is not None,
        )
        self._registry = registry
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        try:
            await runner.setup()  # starts the blocks: their stores connect
            for name in registry.names:  # as do the brokers: an unreachable one stops the start
                try:
                    await registry.broker(name)
                except TetherError as exc:
                    raise SidecarError(f"pub/sub component {name!r}: {exc}") from exc
        except TetherError as exc:
            await runner.cleanup()
            await tracing.shutdown(self.app_id)
            raise SidecarError(f"cannot start the components of app {self.app_id!r}: {exc}"
                               ) from exc
        served = await self._listen(runner)
        self._runner = runner
        if self.api_only:
            log.info("API process %d of app %r: HTTP API on %s", os.getpid(), self.app_id,
                     ", ".join(f"http://{e}" for e in served))
            return
        if self.grpc_port is not None:
            await self._serve_grpc(app, blocks, registry)
        if self.metrics_port is not None:
            # on the API's first address (127.0.0.1 unless told otherwise), as Dapr
            metrics = MetricsServer(self.metrics_port, self.listening[0], self.app_id)
            if await metrics.start():
                self._metrics = metrics
        # delayed publish: forward this app's components' scheduled events when due
        self._schedulers = Schedulers(registry.names, registry.broker)
        self._schedulers.start()
        await self._run_output_calls()
        names = ", ".join(c.name for c in components) or "none"
        log.info(
            "sidecar for app %r: HTTP API on %s%s (API token %s), components: %s%s",
            self.app_id, ", ".join(f"http://{e}" for e in served),
            "" if self._grpc is None else f", gRPC API on port {self.grpc_port}",
            "required" if self.api_token else "not set", names,
            f"; resiliency: {', '.join(self.resiliency.names)}" if self.resiliency.names else "",
        )
        exposed = [a for a in self.listen_addresses if not _is_loopback(a)]
        if exposed and not self.api_token:
            log.warning(
                "the HTTP API of app %r listens on %s without DAPR_API_TOKEN: anyone who can "
                "reach it can call every route (docs/security.md)",
                self.app_id, ", ".join(exposed),
            )

    async def _listen(self, runner: web.AppRunner) -> list[str]:
        """A site per listen address; as Dapr, an address that fails is skipped (with a
        warning) if another one serves. The endpoints served."""
        served: list[str] = []
        failed: list[str] = []
        shared = self.sharing is not None
        listening: list[str] = []
        for address in self.listen_addresses:
            endpoint = _endpoint(address, self.http_port)
            try:
                if shared and not self.api_only:
                    # SO_REUSEPORT would let the port be shared with a stranger: the main
                    # process makes sure nobody listens on it yet
                    _check_free(address, self.http_port)
                await web.TCPSite(runner, address, self.http_port, reuse_port=shared).start()
            except OSError as exc:
                failed.append(f"{endpoint}: {exc.strerror or exc}")
            else:
                served.append(endpoint)
                listening.append(address)
        self.listening = tuple(listening)
        if served and self.sharing is not None and self.sharing.main:
            await web.UnixSite(runner, self.sharing.socket).start()
        if not served:
            await runner.cleanup()
            raise SidecarError(
                f"cannot serve the HTTP API of app {self.app_id!r} on {'; '.join(failed)}"
            )
        for failure in failed:
            log.warning("the HTTP API of app %r cannot listen on %s", self.app_id, failure)
        return served

    async def _serve_grpc(
        self, app: web.Application, blocks: Sequence[ApiBlock], registry: PubSubRegistry
    ) -> None:
        """Serve Dapr's gRPC API over the same block services as the HTTP API (the API
        processes of --api-processes serve HTTP only: gRPC is the main process's)."""
        assert self.grpc_port is not None
        try:  # the grpc extra (grpcio and the SDK's generated modules) is optional
            from tether.sidecar.grpc import GrpcServer, GrpcServices
        except ImportError as exc:
            log.warning("app %r: Dapr's gRPC API is not served (%s): install tether[grpc]",
                        self.app_id, exc)
            return
        streams = StreamingSubscriptions(self.app_id, registry, resiliency=self.resiliency)
        self._streams = streams
        services = GrpcServices(
            state=_service(blocks, StateApi).service,
            publisher=Publisher(registry, self.app_id, self.resiliency),
            bindings=_service(blocks, BindingsApi).service,
            secrets=_service(blocks, SecretsApi).service,
            configuration=_service(blocks, ConfigurationApi).service,
            lock=_service(blocks, LockApi).service,
            invocation=_service(blocks, InvokeApi).service,
            metadata=app[METADATA],
            streams=streams,
            jobs=_service(blocks, JobsApi).service,
        )
        server = GrpcServer(services, self.api_token)
        try:
            await server.start(self.listening, self.grpc_port)
        except TetherError as exc:
            await self.stop()
            raise SidecarError(f"app {self.app_id!r}: {exc}") from exc
        self._grpc = server

    def _actors_metadata(self) -> list[dict[str, object]]:
        return [] if self._actor_host is None else self._actor_host.counts()

    def _subscriptions_metadata(self) -> list[dict[str, object]]:
        found = [] if self.subscriptions is None else self.subscriptions.metadata()
        return found + ([] if self._streams is None else self._streams.metadata())

    async def start_subscriptions(self, app_port: int, drain_timeout: float) -> None:
        """Deliver the app's subscriptions to ``app_port`` (call once the app listens)."""
        assert self._registry is not None, "start() first"
        assert not self.api_only, "the main process delivers"
        subs = AppSubscriptions(
            self.app_id, app_port, self._registry, self._declarative,
            options=DeliveryOptions(drain_timeout=drain_timeout), resiliency=self.resiliency,
            actors=self._actors,
        )
        try:
            await subs.start()
        except SubscriptionError as exc:
            raise SidecarError(str(exc)) from exc
        self.subscriptions = subs
        await self._take_calls(app_port, drain_timeout)
        await self._start_input_bindings(app_port, drain_timeout)
        await self._host_actors(app_port)
        await self._start_jobs(app_port, drain_timeout)

    async def _run_output_calls(self) -> None:
        """Run the app's async output binding calls (they need no app)."""
        service = self._bindings
        if service is None or not service.outputs or service.pubsub_name is None:
            return
        assert self._registry is not None
        try:
            calls = OutputCalls(service, await self._registry.broker(service.pubsub_name))
            await calls.start()
        except TetherError as exc:
            await self.stop()
            raise SidecarError(f"cannot run the async binding calls of app {self.app_id!r}: "
                               f"{exc}") from exc
        self._output_calls = calls

    async def _start_input_bindings(self, app_port: int, drain_timeout: float) -> None:
        """Read the app's input bindings onto their topics and deliver them to the app."""
        service = self._bindings
        if service is None or not service.inputs or service.pubsub_name is None:
            return
        assert self._registry is not None
        channel = BindingChannel(app_port, api_token=app_api_token())
        try:
            inputs = InputBindings(service, await self._registry.broker(service.pubsub_name),
                                   channel, DeliveryOptions(drain_timeout=drain_timeout))
            await inputs.start()
        except TetherError as exc:
            await channel.close()
            raise SidecarError(f"cannot start the input bindings of app {self.app_id!r}: "
                               f"{exc}") from exc
        self._inputs = inputs

    async def _host_actors(self, app_port: int) -> None:
        """Host the actor types the app declares (``GET /dapr/config``), if any."""
        service = self._actors
        if service is None or service.pubsub is None:
            return
        config = await fetch_actor_config(app_port, app_api_token())
        if not config.entities:
            return
        assert self._registry is not None
        try:
            host = ActorHost(service, await self._registry.broker(service.pubsub), app_port,
                             config, api_token=app_api_token())
            await host.start()
        except TetherError as exc:
            raise SidecarError(f"cannot host the actors of app {self.app_id!r}: {exc}"
                               ) from exc
        self._actor_host = host

    async def _start_jobs(self, app_port: int, drain_timeout: float) -> None:
        """Fire the app's job triggers on it (``POST /job/{name}``)."""
        service = self._jobs
        if service is None or service.pubsub_name is None:
            return
        assert self._registry is not None
        channel = JobChannel(service, app_port, api_token=app_api_token())
        try:
            triggers = JobTriggers(service, await self._registry.broker(service.pubsub_name),
                                   channel, DeliveryOptions(drain_timeout=drain_timeout))
            await triggers.start()
        except TetherError as exc:
            raise SidecarError(f"cannot start the jobs of app {self.app_id!r}: {exc}"
                               ) from exc
        self._job_triggers = triggers

    async def _take_calls(self, app_port: int, drain_timeout: float) -> None:
        """Serve the calls to this app (service invocation) from its pub/sub broker."""
        assert self._registry is not None
        pubsub = runtime_pubsub(self._registry)
        if pubsub is None:
            return
        try:
            broker = await self._registry.broker(pubsub)
            worker = InvocationWorker(
                broker, self.app_id, app_port, api_token=app_api_token(),
                drain_timeout=drain_timeout, access=self._access,
            )
            await worker.start()
            self._invocations = worker
            # durable async calls: delivered as pub/sub events are (retries, dead letters)
            channel = AsyncInvokeChannel(self.app_id, app_port, api_token=app_api_token(),
                                         access=self._access)
            async_calls = AsyncInvocations(broker, pubsub, channel,
                                           DeliveryOptions(drain_timeout=drain_timeout))
            await async_calls.start()
            self._async_calls = async_calls
        except TetherError as exc:
            raise SidecarError(f"cannot take the calls to app {self.app_id!r} on pub/sub "
                               f"{pubsub!r}: {exc}") from exc
        log.info("app %r takes calls (service invocation) on pub/sub %r", self.app_id, pubsub)

    async def stop_subscriptions(self) -> None:
        """Stop delivering and taking calls, letting those in flight finish (the brokers
        stay open)."""
        subs, self.subscriptions = self.subscriptions, None
        calls, self._invocations = self._invocations, None
        async_calls, self._async_calls = self._async_calls, None
        inputs, self._inputs = self._inputs, None
        actor_host, self._actor_host = self._actor_host, None
        jobs, self._job_triggers = self._job_triggers, None
        await asyncio.gather(*(part.stop() for part in (subs, calls, async_calls, inputs,
                                                        actor_host, jobs)
                               if part is not None))

    async def stop(self) -> None:
        """Stop delivering, stop serving and close the brokers (the app's cleanup closes
        the registry)."""
        await self.stop_subscriptions()
        schedulers, self._schedulers = self._schedulers, None
        if schedulers is not None:
            await schedulers.stop()
        output_calls, self._output_calls = self._output_calls, None
        if output_calls is not None:
            await output_calls.stop()
        grpc_server, self._grpc = self._grpc, None
        if grpc_server is not None:  # before the blocks close: calls in flight finish
            await grpc_server.stop()
        streams, self._streams = self._streams, None
        if streams is not None:  # what the closing calls left running, before the brokers
            await streams.stop()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            if not self.api_only:
                log.info("sidecar for app %r stopped", self.app_id)
        main, self._main = self._main, None
        if main is not None:
            await main.close()
        metrics, self._metrics = self._metrics, None
        if metrics is not None:
            await metrics.stop()
        # the spans not exported yet go out now
        await tracing.shutdown(self.app_id)


B = TypeVar("B", bound=ApiBlock)


def _service(blocks: Sequence[ApiBlock], kind: type[B]) -> B:
    """The block of ``kind`` (the sidecar always builds the ones gRPC serves)."""
    found = next((b for b in blocks if isinstance(b, kind)), None)
    if found is None:
        raise SidecarError(f"the sidecar has no {kind.__name__} block")
    return found


def _check_shareable(components: Sequence[Component]) -> None:
    """ConfigError for a component that lives in one process's memory: the other processes
    of a shared sidecar would each have their own."""
    for component in components:
        if component.type in PROCESS_LOCAL_TYPES:
            raise ConfigError(
                f"{describe(component, 'component')} of type {component.type} lives in the "
                "memory of one process, so it cannot be shared by --api-processes (apiProcesses "
                "in a run file) above 1: use a file or server backed type (e.g. "
                "pubsub.tether.embedded, state.sqlite, redis) or one API process"
            )


def _check_free(address: str, port: int) -> None:
    """OSError(EADDRINUSE) if something listens on ``address:port``: a plain bind (no
    SO_REUSEPORT) fails then."""
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(
        address, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name: assume it reaches beyond this machine
        return False
