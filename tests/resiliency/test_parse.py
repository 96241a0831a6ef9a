"""Resiliency documents read from files: good ones into policies, bad ones into an error
naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.platform.components import load_resources
from tether.platform.components.model import ResourceError
from tether.platform.resiliency import Resiliency
from tether.platform.resiliency.retry import EXPONENTIAL

GOOD = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: myresiliency
scopes: [orders, cart]
spec:
  policies:
    timeouts:
      general: 5s
      fast: 500ms
      bare: 1500
    retries:
      retryForever:
        policy: exponential
        maxInterval: 15s
        maxRetries: -1
      retry5xx:
        policy: constant
        duration: 200ms
        maxRetries: 3
        matching:
          httpStatusCodes: "429,500-599"
          gRPCStatusCodes: "1-4,8-11,13,14"
      DaprBuiltInServiceRetries:
        maxRetries: 1
    circuitBreakers:
      simpleCB:
        maxRequests: 2
        interval: 8s
        timeout: 45s
        trip: consecutiveFailures >= 5 || totalFailures > 20
  targets:
    apps:
      cart:
        timeout: general
        retry: retry5xx
        circuitBreaker: simpleCB
    actors:
      myActorType:
        timeout: general
        retry: retryForever
        circuitBreaker: simpleCB
        circuitBreakerScope: both
    components:
      statestore:
        outbound:
          timeout: fast
          retry: retryForever
          circuitBreaker: simpleCB
      pubsub:
        inbound:
          retry: retry5xx
"""


def load(tmp_path: Path, text: str, app_id: str = "orders") -> Resiliency:
    (tmp_path / "resiliency.yaml").write_text(text)
    resources = load_resources(tmp_path, app_id)
    return Resiliency.load(resources.others, app_id)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ResourceError) as caught:
        load(tmp_path, text)
    message = str(caught.value)
    assert "resiliency.yaml" in message
    return message


def test_a_full_document_is_read(tmp_path: Path) -> None:
    res = load(tmp_path, GOOD)
    assert res.names == ["myresiliency"]
    state = res.component_outbound("statestore", "state")
    assert state.timeout == 0.5
    assert state.retry is not None and state.retry.policy == EXPONENTIAL
    assert state.retry.max_retries == -1 and state.retry.max_interval == 15.0
    assert state.breaker is not None
    assert state.breaker.policy.max_requests == 2
    assert state.breaker.policy.interval == 8.0 and state.breaker.policy.timeout == 45.0
    cart = res.policy_for_app("cart")
    assert cart.timeout == 5.0 and cart.retry is not None
    assert cart.retry.duration == 0.2 and cart.retry.max_retries == 3
    assert cart.retry.retries_status(503) and cart.retry.retries_status(429)
    assert not cart.retry.retries_status(404)
    assert cart.retry.retries_status(14) and not cart.retry.retries_status(5)
    inbound = res.component_inbound("pubsub", "pubsub")
    assert inbound.retry is not None and inbound.timeout is None and inbound.breaker is None
    # a component target without that direction gets nothing, not the defaults
    assert res.component_outbound("pubsub", "pubsub").empty
    # built-in retries can be overridden, but not below 3 retries
    builtin = res.builtin_retry("DaprBuiltInServiceRetries")
    assert builtin is not None and builtin.max_retries == 3


def test_a_bare_number_is_milliseconds(tmp_path: Path) -> None:
    text = GOOD.replace("timeout: fast", "timeout: bare")
    assert load(tmp_path, text).component_outbound("statestore", "state").timeout == 1.5


def test_lookups_return_one_policy_per_target(tmp_path: Path) -> None:
    res = load(tmp_path, GOOD)
    first = res.component_outbound("statestore", "state")
    assert res.component_outbound("statestore", "state") is first
    assert res.policy_for_app("cart") is res.policy_for_app("cart")
    # each target has its own breaker state
    assert res.policy_for_app("cart").breaker is not first.breaker


def test_scopes_hide_a_resiliency_from_other_apps(tmp_path: Path) -> None:
    res = load(tmp_path, GOOD, app_id="billing")
    assert res.names == []
    assert res.component_outbound("statestore", "state").empty


def test_no_resiliency_means_no_policy(tmp_path: Path) -> None:
    res = Resiliency()
    assert res.component_outbound("statestore", "state").empty
    assert res.component_inbound("pubsub", "pubsub").empty
    assert res.policy_for_app("cart").empty
    builtin = res.builtin_retry("DaprBuiltInServiceRetries")
    assert builtin is not None and builtin.max_retries == 3 and builtin.duration == 1.0


DEFAULTS = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: defaults
spec:
  policies:
    timeouts:
      DefaultTimeoutPolicy: 9s
      DefaultComponentOutboundTimeoutPolicy: 3s
    retries:
      DefaultRetryPolicy:
        maxRetries: 2
      DefaultStatestoreComponentOutboundRetryPolicy:
        maxRetries: 7
      DefaultAppRetryPolicy:
        maxRetries: 4
    circuitBreakers:
      DefaultPubsubComponentInboundCircuitBreakerPolicy:
        trip: consecutiveFailures > 1
  targets:
    components:
      named:
        outbound:
          retry: DefaultRetryPolicy
"""


def test_default_policies_from_most_to_least_specific(tmp_path: Path) -> None:
    res = load(tmp_path, DEFAULTS)
    state = res.component_outbound("statestore", "state")
    assert state.timeout == 3.0
    assert state.retry is not None and state.retry.max_retries == 7
    assert state.breaker is None
    publish = res.component_outbound("pubsub", "pubsub")
    assert publish.timeout == 3.0
    assert publish.retry is not None and publish.retry.max_retries == 2
    delivery = res.component_inbound("pubsub", "pubsub")
    assert delivery.timeout == 9.0 and delivery.breaker is not None
    app = res.policy_for_app("cart")
    assert app.retry is not None and app.retry.max_retries == 4 and app.timeout == 9.0
    # a named target takes only what it names
    named = res.component_outbound("named", "state")
    assert named.timeout is None and named.retry is not None and named.retry.max_retries == 2


def test_later_documents_override_policies_of_the_same_name(tmp_path: Path) -> None:
    second = GOOD.replace("name: myresiliency", "name: second").replace("fast: 500ms", "fast: 2s")
    res = load(tmp_path, GOOD + "---\n" + second)
    assert res.names == ["myresiliency", "second"]
    assert res.component_outbound("statestore", "state").timeout == 2.0


@pytest.mark.parametrize(("old", "new", "field", "problem"), [
    ("maxRetries: 3", "maxRetries: many", "spec.policies.retries.retry5xx.maxRetries",
     "must be an integer"),
    ("maxRetries: 3", "maxRetries: -2", "spec.policies.retries.retry5xx.maxRetries",
     "at least -1"),
    ("policy: constant", "policy: linear", "spec.policies.retries.retry5xx.policy",
     "constant or exponential"),
    ("duration: 200ms", "duration: soon", "spec.policies.retries.retry5xx.duration",
     "not a duration"),
    ("general: 5s", "general: -5s", "spec.policies.timeouts.general", "negative"),
    ('"429,500-599"', '"429,500-699"', "spec.policies.retries.retry5xx.matching.httpStatusCodes",
     "699"),
    ('"429,500-599"', '"429,599-500"', "spec.policies.retries.retry5xx.matching.httpStatusCodes",
     "ends before"),
    ('"1-4,8-11,13,14"', '"1-4-5"', "spec.policies.retries.retry5xx.matching.gRPCStatusCodes",
     "more than one"),
    ("trip: consecutiveFailures >= 5 || totalFailures > 20", "trip: failures > 5",
     "spec.policies.circuitBreakers.simpleCB.trip", "undeclared reference"),
    ("trip: consecutiveFailures >= 5 || totalFailures > 20", "trip: consecutiveFailures + 1",
     "spec.policies.circuitBreakers.simpleCB.trip", "not a bool"),
    ("maxRequests: 2", "maxRequests: two", "spec.policies.circuitBreakers.simpleCB.maxRequests",
     "must be an integer"),
    ("maxRetries: 3\n", "maxRetry: 3\n", "spec.policies.retries.retry5xx.maxRetry",
     "not a known field"),
    ("retry: retry5xx\n        circuitBreaker: simpleCB\n    actors",
     "retry: nope\n        circuitBreaker: simpleCB\n    actors", "spec.targets.apps.cart.retry",
     "'nope', which is not defined"),
    ("circuitBreaker: simpleCB\n      pubsub", "circuitBreaker: other\n      pubsub",
     "spec.targets.components.statestore.outbound.circuitBreaker", "not defined"),
    ("        outbound:\n          timeout: fast", "        outward:\n          timeout: fast",
     "spec.targets.components.statestore.outward", "not a known field"),
    ("circuitBreakerScope: both", "circuitBreakerScope: all",
     "spec.targets.actors.myActorType.circuitBreakerScope", "one of"),
    ("apiVersion: dapr.io/v1alpha1", "apiVersion: dapr.io/v2", "apiVersion", "not supported"),
])
def test_a_bad_file_names_the_field(
    tmp_path: Path, old: str, new: str, field: str, problem: str
) -> None:
    assert old in GOOD
    message = error(tmp_path, GOOD.replace(old, new, 1))
    assert f"{field} " in message and problem in message


def test_a_document_without_policies_is_refused(tmp_path: Path) -> None:
    text = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: x\nspec: {}\n"
    assert "spec.policies is required" in error(tmp_path, text)


def test_a_bad_file_scoped_to_another_app_is_still_an_error(tmp_path: Path) -> None:
    text = GOOD.replace("scopes: [orders, cart]", "scopes: [billing]").replace(
        "maxRetries: 3", "maxRetries: x")
    assert "maxRetries" in error(tmp_path, text)
