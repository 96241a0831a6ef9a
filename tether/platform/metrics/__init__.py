"""The Prometheus series every part of Tether records into (docs/observability.md).

One registry per process; every series carries ``app_id`` first, so one process that runs
several apps (``tether run -f``) serves each app's own series on that app's metrics port
(exposition.py filters by it). Labels stay bounded: component, topic, route template,
method, status, outcome; never an event id, a key or a raw path.

Dapr's names where Dapr has the series (its latencies in milliseconds, with its default
buckets); Tether's own start with ``tether_``. The hot paths keep the labelled children
they use (:func:`child`), so a record is a dict lookup and an increment.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=False)

#: where GET /metrics is served unless told otherwise (Dapr's --metrics-port default)
DEFAULT_PORT = 9090

#: Dapr's default latencyDistributionBuckets, in milliseconds
LATENCY_BUCKETS_MS = (
    1, 2, 3, 4, 5, 6, 8, 10, 13, 16, 20, 25, 30, 40, 50, 65, 80, 100, 130, 160, 200, 250,
    300, 400, 500, 650, 800, 1000, 2000, 5000, 10000, 20000, 50000, 100000,
)

#: counters Dapr exposes without the ``_total`` suffix (its OpenCensus exporter); the
#: exposition writes these under their bare name so Dapr's queries and dashboards work
DAPR_COUNTERS: set[str] = set()


def _counter(name: str, doc: str, labels: tuple[str, ...], *, dapr: bool = True) -> Counter:
    if dapr:
        DAPR_COUNTERS.add(name)
    return Counter(name, doc, ("app_id", *labels), registry=REGISTRY)


def _histogram(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
    return Histogram(name, doc, ("app_id", *labels), registry=REGISTRY,
                     buckets=LATENCY_BUCKETS_MS)


# --- the sidecar's HTTP API ---------------------------------------------------------------
HTTP_LABELS = ("method", "path", "status")
HTTP_REQUESTS = _counter("dapr_http_server_request_count",
                         "HTTP requests the sidecar answered", HTTP_LABELS)
HTTP_LATENCY = _histogram("dapr_http_server_latency",
                          "time to answer an HTTP request, in ms", HTTP_LABELS)

# --- pub/sub -------------------------------------------------------------------------------
INGRESS_LABELS = ("component", "topic", "process_status")
PUBSUB_INGRESS = _counter("dapr_component_pubsub_ingress_count",
                          "events delivered to the app, by its answer (success, retry, drop)",
                          INGRESS_LABELS)
PUBSUB_INGRESS_LATENCY = _histogram("dapr_component_pubsub_ingress_latencies",
                                    "time the app took to process an event, in ms",
                                    INGRESS_LABELS)
EGRESS_LABELS = ("component", "topic", "success")
PUBSUB_EGRESS = _counter("dapr_component_pubsub_egress_count",
                         "events published to a broker (success true or false)", EGRESS_LABELS)
PUBSUB_EGRESS_LATENCY = _histogram("dapr_component_pubsub_egress_latencies",
                                   "time a publish took, in ms", EGRESS_LABELS)
TOPIC_LABELS = ("component", "topic")
DELIVERIES_IN_FLIGHT = Gauge("tether_pubsub_deliveries_in_flight",
                             "events handed to the app and not settled yet",
                             ("app_id", *TOPIC_LABELS), registry=REGISTRY)
DELIVERY_RETRIES = _counter("tether_pubsub_retries",
                            "deliveries nacked for a later retry", TOPIC_LABELS, dapr=False)
DEAD_LETTERED = _counter("tether_pubsub_dead_lettered",
                         "events the delivery worker sent to the dead-letter topic",
                         TOPIC_LABELS, dapr=False)

# --- state ----------------------------------------------------------------------------------
STATE_LABELS = ("component", "operation", "success")
STATE_CALLS = _counter("dapr_component_state_count", "state store calls", STATE_LABELS)
STATE_LATENCY = _histogram("dapr_component_state_latencies",
                           "time a state store call took, in ms", STATE_LABELS)

# --- bindings -------------------------------------------------------------------------------
OUTPUT_BINDING_LABELS = ("name", "operation", "success")
OUTPUT_BINDING_CALLS = _counter("dapr_component_output_binding_count",
                                "output binding calls", OUTPUT_BINDING_LABELS)
OUTPUT_BINDING_LATENCY = _histogram("dapr_component_output_binding_latencies",
                                    "time an output binding call took, in ms",
                                    OUTPUT_BINDING_LABELS)
INPUT_BINDING_LABELS = ("name", "success")
INPUT_BINDING_EVENTS = _counter("dapr_component_input_binding_count",
                                "events read from an input source onto its Tether topic",
                                INPUT_BINDING_LABELS)
INPUT_BINDING_LATENCY = _histogram("dapr_component_input_binding_latencies",
                                   "time putting one input event on its topic took, in ms",
                                   INPUT_BINDING_LABELS)

# --- service invocation (the caller's side) ------------------------------------------------
INVOCATION_LABELS = ("destination_app_id", "status")
INVOCATIONS = _counter("tether_invocation_calls",
                       "service invocation calls made, by the answer's HTTP status",
                       INVOCATION_LABELS, dapr=False)
INVOCATION_LATENCY = _histogram("tether_invocation_latency",
                                "time a service invocation call took, in ms",
                                INVOCATION_LABELS)

M = TypeVar("M", Counter, Gauge, Histogram)


def child(metric: M, *labels: str) -> M:
    """The series of ``metric`` with ``labels`` (cached by prometheus_client)."""
    return metric.labels(*labels)


class Timed:
    """A counter and a latency histogram recorded together, their children kept per label
    set: the hot paths call :meth:`record` with their labels and seconds."""

    __slots__ = ("_children", "_counter", "_histogram")

    def __init__(self, counter: Counter, histogram: Histogram) -> None:
        self._counter = counter
        self._histogram = histogram
        self._children: dict[tuple[str, ...], tuple[Any, Any]] = {}

    def record(self, labels: tuple[str, ...], seconds: float, count: int = 1) -> None:
        """``count`` more (the events of a bulk call), and one latency of ``seconds``."""
        pair = self._children.get(labels)
        if pair is None:
            pair = self._children[labels] = (self._counter.labels(*labels),
                                             self._histogram.labels(*labels))
        pair[0].inc(count)
        pair[1].observe(seconds * 1000)


HTTP = Timed(HTTP_REQUESTS, HTTP_LATENCY)
INGRESS = Timed(PUBSUB_INGRESS, PUBSUB_INGRESS_LATENCY)
EGRESS = Timed(PUBSUB_EGRESS, PUBSUB_EGRESS_LATENCY)
STATE = Timed(STATE_CALLS, STATE_LATENCY)
INVOCATION = Timed(INVOCATIONS, INVOCATION_LATENCY)
OUTPUT_BINDING = Timed(OUTPUT_BINDING_CALLS, OUTPUT_BINDING_LATENCY)
INPUT_BINDING = Timed(INPUT_BINDING_EVENTS, INPUT_BINDING_LATENCY)

__all__ = [
    "DAPR_COUNTERS",
    "DEFAULT_PORT",
    "EGRESS",
    "HTTP",
    "INGRESS",
    "INPUT_BINDING",
    "INVOCATION",
    "OUTPUT_BINDING",
    "REGISTRY",
    "STATE",
    "Timed",
    "child",
]
