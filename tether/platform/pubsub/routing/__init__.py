"""Dapr-compatible pub/sub topic routing with CEL match expressions (docs/routing.md)."""

from tether.platform.pubsub.routing.table import (
    OnError,
    Route,
    RouteEvaluationError,
    RouteTable,
    RoutingError,
    RuleLike,
    ValueExpression,
)

__all__ = ["OnError", "Route", "RouteEvaluationError", "RouteTable", "RoutingError", "RuleLike",
           "ValueExpression"]
