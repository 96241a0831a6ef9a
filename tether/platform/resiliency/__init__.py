"""Dapr's Resiliency resource: timeouts, retries and circuit breakers applied to the calls
the sidecar makes to components and apps (docs/resiliency.md).

:class:`Resiliency` (one per sidecar) answers which :class:`Policy` applies to a target;
``await policy.call(fn)`` runs a call under it.
"""

from tether.platform.resiliency.breaker import (
    BreakerPolicy,
    CircuitBreaker,
    CircuitOpenError,
)
from tether.platform.resiliency.errors import ResiliencyError
from tether.platform.resiliency.parse import ResiliencySpec, parse_resiliency, resiliency_specs
from tether.platform.resiliency.policy import Clock, Policy, PolicyTimeoutError
from tether.platform.resiliency.resiliency import Resiliency
from tether.platform.resiliency.retry import RetryPolicy, StatusCodes

__all__ = [
    "BreakerPolicy",
    "CircuitBreaker",
    "CircuitOpenError",
    "Clock",
    "Policy",
    "PolicyTimeoutError",
    "Resiliency",
    "ResiliencyError",
    "ResiliencySpec",
    "RetryPolicy",
    "StatusCodes",
    "parse_resiliency",
    "resiliency_specs",
]
