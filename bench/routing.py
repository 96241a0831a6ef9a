"""Topic routing cost per event: CEL libraries against a hand-written predicate, in one run.

    .venv/bin/python bench/routing.py [--events 20000] [--repeat 5]

A 3-rule table plus a default path (the shape of Dapr's routing examples) routes N events
with 200-byte JSON data whose type, amount and customer tier vary so that every rule and the
default are taken. Rows:

- hand-written: the Python function a user would write instead of rules;
- tether: RouteTable (cel-expr-python, the CEL project's cel-cpp bindings);
- "whole event": the same library handed the whole event each time, without Tether's
  cut-down activation (and JSON ints left as ints);
- common-expression-language (Rust bindings) and cel-python (pure Python), each with
  Tether's activation and with the whole event; a library that is not installed is skipped
  (``pip install common-expression-language cel-python``).

Every row must give the same paths (checked). The best of R passes is kept, since noise only
ever slows a pass down; the slow pure-Python rows run one pass over a tenth of the events.
Prints events/s and the ratio to the hand-written cost; record the figures in docs/routing.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cel_expr_python import cel

from tether.platform.events import CloudEvent
from tether.platform.pubsub.routing import Route, RouteTable
from tether.platform.pubsub.routing.activation import activation
from tether.platform.pubsub.routing.references import needs_of

RULES = [
    Route('event.type == "com.example.order.cancelled"', "/cancelled"),
    Route('event.type == "com.example.order.created" && event.data.amount > 1000', "/large"),
    Route('event.data.customer.tier == "gold" && event.source.startsWith("orders/")', "/gold"),
]
DEFAULT = "/orders"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TYPES = ("com.example.order.created", "com.example.order.cancelled", "com.example.order.shipped")


def make_events(count: int) -> list[CloudEvent]:
    events = []
    for n in range(count):
        data = {
            "orderId": f"o-{n:08d}",
            "customer": {"id": f"c-{n % 977:05d}", "tier": ("gold", "silver")[n % 2]},
            "amount": (150, 2500, 99.5)[n % 3],
            "currency": "EUR",
            "items": [{"sku": "a1", "qty": 2}, {"sku": "b7", "qty": 1}],
            "note": "deliver after 5pm, ring twice" + "." * 13,
        }
        events.append(
            CloudEvent(
                type=TYPES[n % 7 % 3],
                source="orders/eu-1",
                data=data,
                extensions={"traceparent": TRACEPARENT},
            )
        )
    return events


def hand_written(event: CloudEvent) -> str | None:
    if event.type == "com.example.order.cancelled":
        return "/cancelled"
    if event.type == "com.example.order.created" and event.data["amount"] > 1000:
        return "/large"
    if event.data["customer"]["tier"] == "gold" and event.source.startswith("orders/"):
        return "/gold"
    return DEFAULT


Router = Callable[[CloudEvent], str | None]
NEEDS = needs_of(rule.match or "" for rule in RULES)


def whole_event(event: CloudEvent) -> dict[str, Any]:
    return {**event.attributes(), "data": event.data}


def tether_activation(event: CloudEvent) -> dict[str, Any]:
    return activation(event, NEEDS)


def first_match(
    evaluate: Callable[[Any, Any], bool],
    prepare: Callable[[dict[str, Any]], Any],
    programs: list[Any],
    build: Callable[[CloudEvent], dict[str, Any]],
) -> Router:
    """A router over compiled ``programs`` (in RULES order) for one library."""
    pairs = list(zip(programs, [rule.path for rule in RULES], strict=True))

    def route(event: CloudEvent) -> str | None:
        variables = prepare({"event": build(event)})
        for program, path in pairs:
            if evaluate(program, variables):
                return path
        return DEFAULT

    return route


def cel_expr_whole() -> Router:
    env = cel.NewEnv(variables={"event": cel.Type.DYN})
    programs = [env.compile(rule.match or "true") for rule in RULES]
    return first_match(
        lambda p, v: p.eval(v).value() is True, env.Activation, programs, whole_event
    )


def common_expression_language() -> list[tuple[str, Router]]:
    try:
        import cel as rust_cel
    except ImportError:
        return []
    programs = [rust_cel.compile(rule.match or "true") for rule in RULES]

    def run(p: Any, v: Any) -> bool:
        return p.execute(v) is True

    return [
        (f"{name} ({label})", first_match(run, rust_cel.Context, programs, build))
        for name, label, build in (
            ("common-expression-language", "tether activation", tether_activation),
            ("common-expression-language", "whole event", whole_event),
        )
    ]


def cel_python() -> list[tuple[str, Router]]:
    try:
        import celpy
    except ImportError:
        return []
    env = celpy.Environment()
    programs = [env.program(env.compile(rule.match or "true")) for rule in RULES]

    def run(p: Any, v: Any) -> bool:
        return bool(p.evaluate(v))

    def prepare(variables: dict[str, Any]) -> Any:
        return {"event": celpy.json_to_cel(variables["event"])}

    return [
        (f"cel-python ({label})", first_match(run, prepare, programs, build))
        for label, build in (("tether activation", tether_activation), ("whole event", whole_event))
    ]


def best_rate(route: Router, events: Sequence[CloudEvent], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for event in events:
            route(event)
        best = min(best, time.perf_counter() - started)
    return len(events) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    events = make_events(args.events)
    size = len(events[0].data_bytes() or b"")
    table = RouteTable.compile(RULES, DEFAULT)
    rows: list[tuple[str, Router, int]] = [
        ("hand-written predicate", hand_written, args.repeat),
        ("tether RouteTable", table.path_for, args.repeat),
        ("cel-expr-python (whole event)", cel_expr_whole(), args.repeat),
    ]
    rows += [(name, route, args.repeat) for name, route in common_expression_language()]
    rows += [(name, route, 1) for name, route in cel_python()]  # ~100x slower: one pass

    expected = [hand_written(e) for e in events]
    print(f"{len(events)} events, {size}-byte JSON data, {len(RULES)} rules + default")
    print(f"paths taken: { {p: expected.count(p) for p in sorted(set(map(str, expected)))} }")
    baseline = 0.0
    for name, route, repeat in rows:
        sample = events if repeat > 1 else events[: max(1, len(events) // 10)]
        if [route(e) for e in sample] != expected[: len(sample)]:
            raise SystemExit(f"{name} routes differently from the hand-written predicate")
        rate = best_rate(route, sample, repeat)
        baseline = baseline or rate
        print(
            f"{name:<50} {rate:>10,.0f} events/s {1e6 / rate:>8.2f} us/event "
            f"{baseline / rate:>6.1f}x hand-written"
        )


if __name__ == "__main__":
    main()
