"""The order publisher: publishes a few orders through its sidecar's Dapr HTTP API (urllib
only), waits until the order processor has settled every one, prints a summary and exits,
which ends the whole `tether run -f` (all apps stop together).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

TIMEOUT = float(os.environ.get("DEMO_TIMEOUT", "60"))

# (id, CloudEvent type, amount): one for each route the processor's rules pick
ORDERS = [
    (1, "order.created", 250.0),
    (2, "order.created", 4800.0),
    (3, "refund", 90.0),
    (4, "order.express", 120.0),
    (5, "order.created", -5.0),
    (6, "order.created", 30.0),
]


def publish(sidecar: str, run: str, order_id: int, kind: str, amount: float) -> None:
    query = urllib.parse.urlencode({
        "metadata.cloudevent.type": kind,
        "metadata.partitionKey": f"order-{order_id}",  # one key per order: independent retries
    })
    body = json.dumps({"run": run, "id": order_id, "amount": amount}).encode()
    request = urllib.request.Request(
        f"{sidecar}/v1.0/publish/pubsub/orders?{query}", data=body, method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204, response.status
    print(f"published order {order_id} ({kind}, amount {amount:g})")


def results(subscriber: str, run: str) -> dict[str, list[dict[str, Any]]]:
    url = f"{subscriber}/results?{urllib.parse.urlencode({'run': run})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            found: dict[str, list[dict[str, Any]]] = json.load(response)
            return found
    except (urllib.error.URLError, OSError):
        return {}  # the processor is not listening yet


def settled(attempts: list[dict[str, Any]]) -> bool:
    # done once some route took it: the first answer, a retry that succeeded, or the dead letter
    return any(a["status"] == "SUCCESS" for a in attempts)


def main() -> int:
    sidecar = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}"
    subscriber = os.environ.get("SUBSCRIBER_URL", "http://127.0.0.1:6021")
    run = uuid.uuid4().hex[:8]  # the processor keeps this run's orders apart from older ones
    for order_id, kind, amount in ORDERS:
        publish(sidecar, run, order_id, kind, amount)

    deadline = time.monotonic() + TIMEOUT
    found = results(subscriber, run)
    while not all(settled(found.get(str(o[0]), [])) for o in ORDERS):
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
        found = results(subscriber, run)

    print("== summary ==")
    ok = True
    for order_id, kind, amount in ORDERS:
        attempts = found.get(str(order_id), [])
        ok = ok and settled(attempts)
        path = ", ".join(a["route"] + " " + a["status"] for a in attempts) or "not delivered"
        print(f"order {order_id} ({kind}, amount {amount:g}): {path}")
        notes = [a["note"] for a in attempts if a["note"]]
        for note in dict.fromkeys(notes):  # each distinct note once
            print(f"    {note}")
    print("all orders settled" if ok else f"not all orders settled within {TIMEOUT:g}s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
