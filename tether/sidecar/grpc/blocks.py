"""The RPCs of the smaller blocks: bindings, secrets, configuration and lock.

Each maps Dapr's request message to one call of the block's service, the same call its
HTTP route makes, and the service's answer to Dapr's response message.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import (
    binding_pb2,
    configuration_pb2,
    lock_pb2,
    secret_pb2,
)

from tether.platform.bindings import BindingRequest, BindingsService
from tether.platform.configuration.service import (
    ConfigurationService,
    UnknownSubscriptionError,
)
from tether.platform.configuration.store import Items
from tether.platform.lock.service import LockService
from tether.platform.secrets.service import SecretsService
from tether.sidecar.bindings import ASYNC_METADATA, flag


class BindingsRpc:
    """InvokeBinding; ``metadata.async = "true"`` makes it a durable async call (as over
    HTTP), answered at once with the call's id in the response metadata."""

    def __init__(self, service: BindingsService) -> None:
        self.service = service

    async def invoke(
        self, request: binding_pb2.InvokeBindingRequest
    ) -> binding_pb2.InvokeBindingResponse:
        metadata = dict(request.metadata)
        is_async = ASYNC_METADATA in metadata and flag(metadata.pop(ASYNC_METADATA),
                                                      "metadata.async")
        call = BindingRequest(operation=request.operation, data=request.data,
                              metadata=metadata)
        if is_async:
            call_id = await self.service.invoke_async(request.name, call)
            return binding_pb2.InvokeBindingResponse(metadata={"id": call_id})
        response = await self.service.invoke(request.name, call)
        return binding_pb2.InvokeBindingResponse(data=response.data or b"",
                                                 metadata=dict(response.metadata))


class SecretsRpc:
    """GetSecret and GetBulkSecret (only what the app's secret scopes allow)."""

    def __init__(self, service: SecretsService) -> None:
        self.service = service

    async def get(self, request: secret_pb2.GetSecretRequest) -> secret_pb2.GetSecretResponse:
        secret = await self.service.get(request.store_name, request.key, dict(request.metadata))
        return secret_pb2.GetSecretResponse(data=secret)

    async def bulk(
        self, request: secret_pb2.GetBulkSecretRequest
    ) -> secret_pb2.GetBulkSecretResponse:
        found = await self.service.bulk(request.store_name, dict(request.metadata))
        return secret_pb2.GetBulkSecretResponse(
            data={name: secret_pb2.SecretResponse(secrets=s) for name, s in found.items()}
        )


def _items(items: Items) -> dict[str, common_pb2.ConfigurationItem]:
    return {key: common_pb2.ConfigurationItem(value=item.value, version=item.version or "",
                                              metadata=dict(item.metadata or {}))
            for key, item in items.items()}


class ConfigurationRpc:
    """GetConfiguration, SubscribeConfiguration (and their Alpha1 names) and
    UnsubscribeConfiguration over the configuration service: every key when none is asked
    for. A subscription is the service's (the same as HTTP's), its changes sent down the
    call's stream instead of POSTed to the app."""

    def __init__(self, service: ConfigurationService) -> None:
        self.service = service
        #: each open stream's queue of changes; None ends the stream (unsubscribed)
        self._streams: dict[str, asyncio.Queue[Items | None]] = {}

    async def get(
        self, request: configuration_pb2.GetConfigurationRequest
    ) -> configuration_pb2.GetConfigurationResponse:
        items = await self.service.get(request.store_name, list(request.keys),
                                       dict(request.metadata))
        return configuration_pb2.GetConfigurationResponse(items=_items(items))

    async def subscribe(
        self, request: configuration_pb2.SubscribeConfigurationRequest
    ) -> AsyncIterator[configuration_pb2.SubscribeConfigurationResponse]:
        """First the subscription's id alone (as Dapr: the SDK waits for it), then one
        message per change, until unsubscribed or the caller goes away."""
        changes: asyncio.Queue[Items | None] = asyncio.Queue()

        async def deliver(sub_id: str, items: Items) -> None:
            await changes.put(items)

        store = request.store_name
        sub_id = await self.service.subscribe(store, list(request.keys),
                                              dict(request.metadata), deliver)
        self._streams[sub_id] = changes
        try:
            yield configuration_pb2.SubscribeConfigurationResponse(id=sub_id)
            while (items := await changes.get()) is not None:
                yield configuration_pb2.SubscribeConfigurationResponse(id=sub_id,
                                                                       items=_items(items))
        finally:
            self._streams.pop(sub_id, None)
            try:  # the caller went away: the watch ends with its stream
                await asyncio.shield(self.service.unsubscribe(store, sub_id))
            except UnknownSubscriptionError:
                pass  # unsubscribed already

    async def unsubscribe(
        self, request: configuration_pb2.UnsubscribeConfigurationRequest
    ) -> configuration_pb2.UnsubscribeConfigurationResponse:
        """``ok`` false with Dapr's message for an unknown id (as over HTTP)."""
        try:
            await self.service.unsubscribe(request.store_name, request.id)
        except UnknownSubscriptionError as exc:
            return configuration_pb2.UnsubscribeConfigurationResponse(ok=False,
                                                                      message=str(exc))
        stream = self._streams.get(request.id)
        if stream is not None:
            stream.put_nowait(None)
        return configuration_pb2.UnsubscribeConfigurationResponse(ok=True)


class LockRpc:
    """TryLockAlpha1 and UnlockAlpha1."""

    def __init__(self, service: LockService) -> None:
        self.service = service

    async def try_lock(self, request: lock_pb2.TryLockRequest) -> lock_pb2.TryLockResponse:
        taken = await self.service.try_lock(request.store_name, request.resource_id,
                                            request.lock_owner, request.expiry_in_seconds)
        return lock_pb2.TryLockResponse(success=taken)

    async def unlock(self, request: lock_pb2.UnlockRequest) -> lock_pb2.UnlockResponse:
        status = await self.service.unlock(request.store_name, request.resource_id,
                                           request.lock_owner)
        # UnlockStatus holds Dapr's UnlockResponse.Status numbers
        return lock_pb2.UnlockResponse(status=int(status))  # type: ignore[arg-type]
