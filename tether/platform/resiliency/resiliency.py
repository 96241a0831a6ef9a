"""The app's resiliency: which policy applies to which call, and the breakers' state.

One :class:`Resiliency` per sidecar, built from the Resiliency documents visible to the app
(merged in load order: a later policy or target of the same name wins, as in Dapr). A
lookup returns the same :class:`Policy` object for the same target every time, so a
breaker's counts and state are those of every call to that target in this process.

Which policy applies (Dapr's order, ``pkg/resiliency/resiliency.go``):

- a target named in ``targets`` gets exactly the policies it names, no defaults;
- otherwise each of timeout, retry and circuit breaker is looked up by the default names,
  most specific first: ``Default<Type>Component<Direction><Kind>Policy``,
  ``DefaultComponent<Direction><Kind>Policy``, ``DefaultComponent<Kind>Policy``,
  ``Default<Kind>Policy`` for a component (Type: Statestore, Pubsub, Binding, ...;
  Kind: Timeout, Retry, CircuitBreaker), and ``DefaultApp<Kind>Policy``,
  ``Default<Kind>Policy`` for an app;
- nothing found: no timeout, no retry, no breaker (the call runs once).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from tether.platform.components import OtherResource
from tether.platform.resiliency.breaker import BreakerPolicy
from tether.platform.resiliency.parse import (
    BUILT_IN_SERVICE_RETRIES,
    ComponentTarget,
    PolicyNames,
    ResiliencySpec,
    resiliency_specs,
    unknown_policy,
)
from tether.platform.resiliency.policy import Clock, Policy
from tether.platform.resiliency.retry import RetryPolicy

INBOUND = "Inbound"
OUTBOUND = "Outbound"
#: a component's block (the first part of its type) as Dapr names it in default policies
COMPONENT_TYPES = {
    "state": "Statestore", "pubsub": "Pubsub", "bindings": "Binding",
    "secretstores": "Secretstore", "configuration": "Configuration", "lock": "Lock",
    "crypto": "Crypto",
}
#: Dapr's built-in retry of service invocation between sidecars (transport failures only)
BUILT_IN_DEFAULTS = {
    BUILT_IN_SERVICE_RETRIES: RetryPolicy(BUILT_IN_SERVICE_RETRIES, duration=1.0, max_retries=3),
}


@dataclass(slots=True)
class _Merged:
    timeouts: dict[str, float] = field(default_factory=dict)
    retries: dict[str, RetryPolicy] = field(default_factory=dict)
    breakers: dict[str, BreakerPolicy] = field(default_factory=dict)
    apps: dict[str, PolicyNames] = field(default_factory=dict)
    actors: dict[str, PolicyNames] = field(default_factory=dict)
    components: dict[str, ComponentTarget] = field(default_factory=dict)


class Resiliency:
    """Policies by target, for one app in one sidecar process."""

    def __init__(self, specs: Sequence[ResiliencySpec] = (), *, clock: Clock | None = None):
        self.specs = tuple(specs)
        self.clock = clock or Clock()
        merged = _Merged()
        for spec in self.specs:
            merged.timeouts.update(spec.timeouts)
            merged.retries.update(spec.retries)
            merged.breakers.update(spec.breakers)
            merged.apps.update(spec.apps)
            merged.actors.update(spec.actors)
            merged.components.update(spec.components)
        self._m = merged
        self._check_references()
        self._policies: dict[tuple[str, str], Policy] = {}

    @classmethod
    def load(
        cls, resources: Iterable[OtherResource], app_id: str, *, clock: Clock | None = None
    ) -> Resiliency:
        """From the loaded resources: every Resiliency parsed (a bad one raises
        ResourceError even if scoped to another app), those visible to ``app_id`` used."""
        specs = [s for s in resiliency_specs(resources) if s.visible_to(app_id)]
        return cls(specs, clock=clock)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.specs]

    # --- lookups ---------------------------------------------------------------------------
    def component_outbound(self, name: str, block: str) -> Policy:
        """Calls from the sidecar to component ``name`` (state operations, publish)."""
        return self._component(name, block, OUTBOUND)

    def component_inbound(self, name: str, block: str) -> Policy:
        """Calls from component ``name`` into the app (pub/sub deliveries)."""
        return self._component(name, block, INBOUND)

    def policy_for_app(self, app_id: str) -> Policy:
        """Service invocation of ``app_id`` (``targets.apps``, else the App defaults)."""
        key = ("app", app_id)
        policy = self._policies.get(key)
        if policy is None:
            names = self._m.apps.get(app_id) or self._defaults(["App"])
            policy = self._build(f"app {app_id}", names, app_id)
            self._policies[key] = policy
        return policy

    def policy_for_actor(self, actor_type: str) -> Policy:
        """Calls of ``actor_type``'s actors (``targets.actors``, else the Actor defaults)."""
        key = ("actor", actor_type)
        policy = self._policies.get(key)
        if policy is None:
            names = self._m.actors.get(actor_type) or self._defaults(["Actor"])
            policy = self._build(f"actor {actor_type}", names, actor_type)
            self._policies[key] = policy
        return policy

    def builtin_retry(self, name: str) -> RetryPolicy | None:
        """A built-in retry (``DaprBuiltInServiceRetries``), as overridden by the user."""
        return self._m.retries.get(name) or BUILT_IN_DEFAULTS.get(name)

    def _component(self, name: str, block: str, direction: str) -> Policy:
        key = (direction, name)
        policy = self._policies.get(key)
        if policy is None:
            target = self._m.components.get(name)
            if target is not None:
                names = (target.inbound if direction == INBOUND else target.outbound)
                names = names or PolicyNames()
            else:
                kind = COMPONENT_TYPES.get(block, block.capitalize())
                names = self._defaults(
                    [f"{kind}Component{direction}", f"Component{direction}", "Component"])
            what = f"component {name} {direction.lower()}"
            policy = self._build(what, names, f"{name}-{direction.lower()}")
            self._policies[key] = policy
        return policy

    def _defaults(self, levels: list[str]) -> PolicyNames:
        def first(kind: str, defined: Mapping[str, object]) -> str | None:
            names = [f"Default{level}{kind}Policy" for level in levels]
            names.append(f"Default{kind}Policy")
            return next((n for n in names if n in defined), None)

        return PolicyNames(
            timeout=first("Timeout", self._m.timeouts),
            retry=first("Retry", self._m.retries),
            circuit_breaker=first("CircuitBreaker", self._m.breakers),
        )

    def _build(self, target: str, names: PolicyNames, instance: str) -> Policy:
        breaker = None
        if names.circuit_breaker is not None:
            breaker = self._m.breakers[names.circuit_breaker].new(instance, self.clock.now)
        return Policy(
            target,
            timeout=self._m.timeouts[names.timeout] if names.timeout is not None else None,
            retry=self._m.retries[names.retry] if names.retry is not None else None,
            breaker=breaker,
            clock=self.clock,
        )

    def _check_references(self) -> None:
        targets: list[PolicyNames] = [*self._m.apps.values(), *self._m.actors.values()]
        for component in self._m.components.values():
            targets += [n for n in (component.inbound, component.outbound) if n is not None]
        for names in targets:
            for key, value, defined, kind in (
                ("timeout", names.timeout, self._m.timeouts, "timeout"),
                ("retry", names.retry, self._m.retries, "retry"),
                ("circuitBreaker", names.circuit_breaker, self._m.breakers, "circuit breaker"),
            ):
                if value is not None and value not in defined:
                    raise unknown_policy(names, key, value, kind)
