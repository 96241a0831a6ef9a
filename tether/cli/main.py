"""The ``tether`` command.

    tether --version
    tether broker check [--broker URL] [--count N] [--timeout S] [--json]
    tether run --app-id ID [--app-port N] [--http-port N] [-d DIR ...] [-- COMMAND ...]
    tether run -f RUN_FILE
    tether worker MODULE:APP [--replicas N] [--broker URL | --resources-path DIR]
    tether workflow start|status|list|history|raise|terminate|pause|resume|purge ...
    tether invoke --app-id ID --method PATH [-d DATA] [--verb POST] [--dapr-http-port N]
    tether jobs [--dapr-http-port N] list|get NAME|delete NAME

The broker URL comes from ``--broker``, else ``TETHER_BROKER``, else the embedded default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from tether import __version__
from tether.brokers import BrokerError, default_broker_url
from tether.cli.broker_check import CheckReport, check_broker
from tether.platform import env


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tether", description="Tether: a Dapr-compatible runtime built around a broker."
    )
    parser.add_argument("--version", action="version", version=f"tether {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    broker = commands.add_parser("broker", help="inspect and test brokers")
    broker_commands = broker.add_subparsers(dest="broker_command", metavar="COMMAND")
    check = broker_commands.add_parser(
        "check",
        help="publish and consume a round trip and report latency",
        description="Publishes events one at a time on a fresh topic, consumes each in a fresh "
        "group, and reports the round-trip latency. Exits 1 if the broker fails.",
    )
    check.add_argument(
        "--broker",
        default=env.get(env.TETHER_BROKER) or default_broker_url(),
        help="broker URL: memory://, embedded://PATH, kafka://host:port, redis://host:port/db, "
        "servicebus://... (default: $TETHER_BROKER or %(default)s)",
    )
    check.add_argument("--count", type=int, default=100, help="round trips (default %(default)s)")
    check.add_argument(
        "--timeout", type=float, default=60.0, help="seconds before giving up (default %(default)s)"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")

    from tether.cli import run

    run.add_arguments(
        commands.add_parser(
            "run", help="run sidecars and their apps (docs/running.md)",
            description="Starts the sidecar HTTP API and the app command with Dapr's "
            "environment; stops both together.",
        )
    )
    from tether.sdk import worker

    worker.add_arguments(
        commands.add_parser(
            "worker", help="run a tether.App in N processes (docs/sdk.md)",
            description="Runs the app's subscriptions in N processes of one consumer group, "
            "restarts a child that dies, and drains them all on SIGTERM or SIGINT.",
        )
    )
    from tether.cli import workflow as workflow_cli

    workflow_cli.add_arguments(commands.add_parser(
        "workflow", help="manage workflow instances through a sidecar (docs/workflows.md)"))
    from tether.cli import invoke as invoke_cli

    invoke_cli.add_arguments(commands.add_parser(
        "invoke", help="call a method of an app through a sidecar (docs/invocation.md)",
        description="Calls METHOD of the app APP-ID through a sidecar's /v1.0/invoke API "
        "and prints the answer's body; exits 1 on a non-2xx answer or an unreachable "
        "sidecar."))
    from tether.cli import jobs as jobs_cli

    jobs_cli.add_arguments(commands.add_parser(
        "jobs", help="list, show and delete an app's jobs through a sidecar (docs/jobs.md)",
        description="The Jobs API of a sidecar: list the app's jobs with their next "
        "triggers, show one, delete one."))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # the reader of our output went away (`tether workflow list -o json | head`): stop
        # quietly, and keep Python from complaining again when it flushes stdout at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "broker" and args.broker_command == "check":
        return _broker_check(args)
    if args.command == "run":
        from tether.cli import run

        return run.main(args)
    if args.command == "worker":
        from tether.sdk import worker

        return worker.main(args)
    if args.command == "workflow":
        from tether.cli import workflow as workflow_cli

        return workflow_cli.main(args)
    if args.command == "invoke":
        from tether.cli import invoke as invoke_cli

        return invoke_cli.main(args)
    if args.command == "jobs":
        from tether.cli import jobs as jobs_cli

        return jobs_cli.main(args)
    parser.print_help()
    return 2


def _broker_check(args: argparse.Namespace) -> int:
    if args.count < 1:
        print("tether: --count must be at least 1", file=sys.stderr)
        return 2
    try:
        report = asyncio.run(check_broker(args.broker, args.count, args.timeout))
    except (BrokerError, ImportError, OSError) as exc:
        print(f"tether: broker check failed for {args.broker}: {exc}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(
            f"tether: broker check timed out after {args.timeout:.0f}s on {args.broker}",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(report.as_dict()) if args.json else _describe(report))
    return 0


def _describe(report: CheckReport) -> str:
    ms = report.latencies_ms
    return "\n".join(
        [
            f"broker      {report.url}",
            f"round trips {report.count} published and consumed, "
            f"{report.count} acknowledged, 0 lost",
            f"connect     {report.connect_ms:.1f} ms (first delivery incl. group join "
            f"{report.first_delivery_ms:.1f} ms)",
            f"latency     p50 {ms['p50']:.2f} ms  p90 {ms['p90']:.2f} ms  "
            f"p99 {ms['p99']:.2f} ms  max {ms['max']:.2f} ms",
            "ok",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
