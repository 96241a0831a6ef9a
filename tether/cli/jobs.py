"""``tether jobs``: the Jobs API of a sidecar from the command line.

    tether jobs [--dapr-http-port N | --address URL] list [-o table|json]
    tether jobs [--dapr-http-port N | --address URL] get NAME
    tether jobs [--dapr-http-port N | --address URL] delete NAME

It talks to a sidecar's HTTP API through ``tether.Client`` (``--dapr-http-port`` /
``--address``, else the sidecar the environment names, as ``tether invoke``): ``list``
prints every job of that sidecar's app with its next trigger (Tether's
``GET /v1.0-alpha1/jobs``), ``get`` the job as JSON, ``delete`` removes it. An error
answer or an unreachable sidecar prints the error and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys

from tether.cli.sidecar_args import add_sidecar_arguments, sidecar_client
from tether.sdk.client import TetherClientError
from tether.sdk.client_jobs import Job


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_sidecar_arguments(parser)
    commands = parser.add_subparsers(dest="jobs_command", required=True)
    listing = commands.add_parser("list", help="the app's jobs and their next triggers")
    listing.add_argument("--output", "-o", choices=("table", "json"), default="table")
    commands.add_parser("get", help="one job, as JSON").add_argument("name")
    commands.add_parser("delete", help="delete a job").add_argument("name")


def _when(job: Job) -> str:
    return job.schedule or f"once at {job.due_time}"


def _table(jobs: list[Job]) -> str:
    rows = [("NAME", "SCHEDULE", "REPEATS", "TRIGGERED", "NEXT TRIGGER")]
    rows += [(j.name, _when(j), "" if j.repeats is None else str(j.repeats),
              str(j.triggered or 0), j.next_trigger or "") for j in jobs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)
                               ).rstrip() for row in rows)


def _as_json(job: Job) -> dict[str, object]:
    body: dict[str, object] = {"name": job.name}
    body.update(job.to_body(overwrite=False))
    return body


def main(args: argparse.Namespace) -> int:
    try:
        with sidecar_client(args) as client:
            if args.jobs_command == "list":
                jobs = client.list_jobs()
                if args.output == "json":
                    print(json.dumps([{**_as_json(j), "nextTrigger": j.next_trigger,
                                       "triggered": j.triggered} for j in jobs], indent=2))
                else:
                    print(_table(jobs))
            elif args.jobs_command == "get":
                print(json.dumps(_as_json(client.get_job_alpha1(args.name)), indent=2))
            else:
                client.delete_job_alpha1(args.name)
                print(f"job {args.name!r} deleted", file=sys.stderr)
    except (TetherClientError, ValueError) as exc:
        print(f"tether jobs: {exc}", file=sys.stderr)
        return 1
    return 0
