"""GetMetadata, SetMetadata and Shutdown over the sidecar's MetadataApi (the object behind
``/v1.0/metadata`` and ``/v1.0/shutdown``): one set of extended metadata for both APIs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dapr.proto.runtime.v1 import metadata_pb2

from tether.sidecar.app import MetadataApi


def _subscription(sub: Mapping[str, Any]) -> metadata_pb2.PubsubSubscription:
    kinds = metadata_pb2.PubsubSubscriptionType
    kind = str(sub.get("type", "")).upper()
    return metadata_pb2.PubsubSubscription(
        pubsub_name=sub["pubsubname"],
        topic=sub["topic"],
        metadata=dict(sub.get("metadata") or {}),
        rules=metadata_pb2.PubsubSubscriptionRules(rules=[
            metadata_pb2.PubsubSubscriptionRule(match=r["match"], path=r["path"])
            for r in sub.get("rules") or ()
        ]),
        dead_letter_topic=sub.get("deadLetterTopic") or "",
        type=kinds.Value(kind) if kind in kinds.keys() else kinds.UNKNOWN,
    )


class MetadataRpc:
    def __init__(self, api: MetadataApi) -> None:
        self.api = api

    def get(self) -> metadata_pb2.GetMetadataResponse:
        found = self.api.describe()
        return metadata_pb2.GetMetadataResponse(
            id=found["id"],
            runtime_version=found["runtimeVersion"],
            enabled_features=found["enabledFeatures"],
            registered_components=[
                metadata_pb2.RegisteredComponents(name=c["name"], type=c["type"],
                                                  version=c["version"],
                                                  capabilities=c["capabilities"])
                for c in found["components"]
            ],
            active_actors_count=[
                metadata_pb2.ActiveActorsCount(type=a["type"], count=a["count"])
                for a in found["actors"]
            ],
            subscriptions=[_subscription(s) for s in found["subscriptions"]],
            extended_metadata=found["extended"],
        )

    def set(self, request: metadata_pb2.SetMetadataRequest) -> None:
        self.api.set(request.key, request.value.encode())

    async def shutdown(self) -> None:
        await self.api.request_shutdown()
