"""Service invocation over the app's pub/sub broker (docs/invocation.md).

A call is a request CloudEvent on the target app's topic, consumed by the target's sidecars
in the app id's consumer group (replicas share the calls), and a reply CloudEvent on the
calling sidecar's own reply topic, matched by request id. :mod:`.messages` holds both events,
:mod:`.service` the caller's side; the target's side is ``tether.workers.invocation``.
"""

from tether.platform.invocation.messages import (
    InvokeReply,
    InvokeRequest,
    request_topic,
)
from tether.platform.invocation.service import InvocationService, Route

__all__ = [
    "InvocationService",
    "InvokeReply",
    "InvokeRequest",
    "Route",
    "request_topic",
]
