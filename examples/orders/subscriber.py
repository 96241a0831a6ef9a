"""The order processor: a plain HTTP app (standard library only) that Tether delivers to.

It declares its subscriptions on GET /dapr/subscribe, as a Dapr app does: CEL rules pick the
route of each order. Every delivery is answered with Dapr's {"status": ...} contract and
recorded, so the publisher can fetch what happened from GET /results?run=RUN.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

PUBSUB = "pubsub"
TOPIC = "orders"
DEAD_LETTER_TOPIC = "orders-deadletter"
EXPRESS_FAILURES = 2  # the express route answers RETRY this many times per order

SUBSCRIPTIONS = [
    {
        "pubsubname": PUBSUB,
        "topic": TOPIC,
        "routes": {
            # tried in order, the first true rule wins
            "rules": [
                {"match": 'event.type == "refund"', "path": "/orders/refund"},
                {"match": "event.data.amount <= 0", "path": "/orders/invalid"},
                {"match": "event.data.amount > 1000", "path": "/orders/large"},
                {"match": 'event.type == "order.express"', "path": "/orders/express"},
            ],
            "default": "/orders/standard",
        },
        "deadLetterTopic": DEAD_LETTER_TOPIC,
    },
    {"pubsubname": PUBSUB, "topic": DEAD_LETTER_TOPIC, "route": "/orders/deadletter"},
]

_lock = threading.Lock()
# (run, order id) -> the attempts, in order: {"route", "status", ...}
_attempts: dict[tuple[str, int], list[dict[str, Any]]] = {}


def _record(event: dict[str, Any], route: str, status: str, note: str = "") -> None:
    data = event.get("data") or {}
    key = (str(data.get("run", "")), int(data.get("id", 0)))
    line = (f"{route}: order {key[1]} ({event.get('type')}, amount {data.get('amount')}) -> "
            f"{status}" + (f" ({note})" if note else ""))
    with _lock:  # handlers run on several threads: one whole line at a time
        _attempts.setdefault(key, []).append({"route": route, "status": status, "note": note})
        print(line, flush=True)


def _attempt_count(event: dict[str, Any], route: str) -> int:
    data = event.get("data") or {}
    key = (str(data.get("run", "")), int(data.get("id", 0)))
    with _lock:
        return sum(1 for a in _attempts.get(key, []) if a["route"] == route)


def handle(route: str, event: dict[str, Any]) -> str:
    """The status word for one delivery of ``event`` to ``route``."""
    if route == "/orders/express":
        # a flaky courier service: the first tries fail, Tether retries with backoff
        if _attempt_count(event, route) < EXPRESS_FAILURES:
            _record(event, route, "RETRY", "courier service unavailable")
            return "RETRY"
    elif route == "/orders/invalid":
        # never valid: DROP sends it to the subscription's deadLetterTopic
        _record(event, route, "DROP", "amount must be positive")
        return "DROP"
    elif route == "/orders/deadletter":
        reason = event.get("deadletterreason", "?")
        _record(event, route, "SUCCESS", f"dead letter from {event.get('deadlettertopic', TOPIC)}"
                f" for review, reason: {reason}")
        return "SUCCESS"
    _record(event, route, "SUCCESS")
    return "SUCCESS"


class Handler(BaseHTTPRequestHandler):
    # http.server dispatches on these names
    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path == "/dapr/subscribe":
            self._reply(SUBSCRIPTIONS)
        elif url.path == "/results":
            run = parse_qs(url.query).get("run", [""])[0]
            with _lock:
                found = {str(k[1]): list(v) for k, v in _attempts.items() if k[0] == run}
            self._reply(found)
        else:
            self._reply({"error": "not found"}, code=404)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            event = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._reply({"status": "DROP"})
            return
        if not self.path.startswith("/orders/"):
            self._reply({"error": "not found"}, code=404)
            return
        self._reply({"status": handle(self.path, event)})

    def _reply(self, body: Any, code: int = 200) -> None:
        payload = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the handlers print one line per delivery instead


def main() -> None:
    port = int(os.environ.get("APP_PORT", "6021"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    # tether run stops the apps with SIGTERM when the publisher is done
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"order processor listening on {port}")
    server.serve_forever()
    server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
