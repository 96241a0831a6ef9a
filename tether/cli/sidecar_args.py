"""Which sidecar a command talks to: ``--dapr-http-port N`` (on 127.0.0.1) or
``--address URL``, else the one ``tether.Client`` finds from the environment; and the API
token. One definition for the commands that call a sidecar (``tether invoke``, ``tether
jobs``)."""

from __future__ import annotations

import argparse

from tether.sdk.client import Client


def add_sidecar_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--dapr-http-port", "--http-port", dest="http_port", type=int,
                       help="the HTTP port of a sidecar on 127.0.0.1 (default: from the "
                       "environment, as tether.Client)")
    where.add_argument("--address", help="the sidecar's URL")
    parser.add_argument("--api-token", help="sent as dapr-api-token (default: $DAPR_API_TOKEN)")


def sidecar_client(args: argparse.Namespace) -> Client:
    """A client of the sidecar the arguments name."""
    address = f"http://127.0.0.1:{args.http_port}" if args.http_port else args.address
    return Client(address, api_token=args.api_token)
