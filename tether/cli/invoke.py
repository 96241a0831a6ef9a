"""``tether invoke``: call a method of an app through a sidecar, as ``dapr invoke`` does.

    tether invoke --app-id ID --method PATH [-d DATA | -f FILE] [--verb POST]
                  [-H 'Name: value' ...] [--timeout S] [--dapr-http-port N | --address URL]

The call goes through a sidecar's ``/v1.0/invoke`` API (``tether.Client.invoke_method``):
``--dapr-http-port`` / ``--address``, else the sidecar ``tether.Client`` finds from the
environment (``DAPR_HTTP_ENDPOINT`` / ``TETHER_HTTP_PORT`` / ``DAPR_HTTP_PORT``, else 3500).
Any sidecar on the app's broker reaches the app (docs/invocation.md), where ``dapr invoke``
looks up the app's own sidecar. The answer's body is printed as received, then
"App invoked successfully" on stderr; a non-2xx answer or an unreachable sidecar prints
the error and exits 1; bad arguments exit 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tether.cli.sidecar_args import add_sidecar_arguments, sidecar_client
from tether.sdk.client import InvokeMethodError, TetherClientError

VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app-id", "-a", required=True, help="the app to invoke")
    parser.add_argument("--method", "-m", required=True,
                        help="the method (a path, e.g. orders or v1/orders?id=7)")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--data", "-d", help="the request body (sent as given)")
    body.add_argument("--data-file", "-f", type=Path, help="a file holding the request body")
    parser.add_argument("--verb", "-v", type=str.upper, choices=VERBS, default="POST",
                        help="the HTTP verb (default %(default)s, as dapr invoke)")
    parser.add_argument("--header", "-H", action="append", default=[],
                        help="a request header 'Name: value' (repeatable)")
    parser.add_argument("--content-type", default=None,
                        help="the body's Content-Type (default application/json)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="the call's deadline in seconds (default: the sidecar's, 60 s)")
    add_sidecar_arguments(parser)


def _headers(values: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        name, colon, text = value.partition(":")
        if not colon or not name.strip():
            raise ValueError(f"--header {value!r}: expected 'Name: value'")
        pairs.append((name.strip(), text.strip()))
    return pairs


def main(args: argparse.Namespace) -> int:
    try:
        headers = _headers(args.header)
        data = args.data_file.read_bytes() if args.data_file else (args.data or "").encode()
    except (ValueError, OSError) as exc:
        print(f"tether invoke: {exc}", file=sys.stderr)
        return 2
    try:
        with sidecar_client(args) as client:
            answer = client.invoke_method(
                args.app_id, args.method, data, content_type=args.content_type,
                metadata=headers, http_verb=args.verb, timeout=args.timeout,
            )
    except InvokeMethodError as exc:
        print(f"tether invoke: error invoking app {args.app_id}: {exc}", file=sys.stderr)
        return 1
    except (TetherClientError, ValueError) as exc:
        print(f"tether invoke: {exc}", file=sys.stderr)
        return 1
    if answer.data:
        sys.stdout.buffer.write(answer.data)
        if not answer.data.endswith(b"\n"):
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
    print("App invoked successfully", file=sys.stderr)
    return 0
