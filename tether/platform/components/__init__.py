"""Dapr resource files (Component, Subscription) loaded into typed, validated objects.

See docs/components.md. ``load_resources(paths, app_id)`` is the entry point.
"""

from tether.platform.components.loader import (
    Resources,
    Templates,
    default_components,
    load_documents,
    load_resources,
)
from tether.platform.components.model import (
    Component,
    MetadataValue,
    OtherResource,
    ResourceError,
    SecretKeyRef,
    Source,
    TopicScopes,
)
from tether.platform.components.programmatic import (
    ProgrammaticSubscriptionError,
    parse_programmatic,
)
from tether.platform.components.subscriptions import BulkSubscribe, RouteRule, Subscription

__all__ = [
    "BulkSubscribe",
    "Component",
    "MetadataValue",
    "OtherResource",
    "ProgrammaticSubscriptionError",
    "ResourceError",
    "Resources",
    "RouteRule",
    "SecretKeyRef",
    "Source",
    "Subscription",
    "Templates",
    "TopicScopes",
    "default_components",
    "load_documents",
    "load_resources",
    "parse_programmatic",
]
