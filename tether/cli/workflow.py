"""``tether workflow ...``: manage workflow instances through a sidecar's HTTP API.

    tether workflow start NAME [--id ID] [--input JSON] [--wait [--timeout S]]
    tether workflow status ID
    tether workflow list [--status S[,S]] [--name NAME] [--limit N] [--continuation-token T]
    tether workflow history ID [--width N]
    tether workflow raise ID EVENT [--data JSON]
    tether workflow terminate|pause|resume|purge ID

Every command takes ``--address URL`` or ``--http-port N`` (default: the sidecar
``tether.Client`` finds from the environment, ``DAPR_HTTP_ENDPOINT`` / ``TETHER_HTTP_PORT``
/ ``DAPR_HTTP_PORT``, else 3500) and ``--output json`` for scripts. ``list`` and
``history`` use Tether's own endpoints; the others are Dapr's workflow API. Exit status: 0,
1 when the sidecar refuses or cannot be reached, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tether.platform.errors import TetherError
from tether.platform.events.event import parse_time
from tether.platform.workflows.history import (
    HistoryEvent,
    OrchestratorStarted,
    SubOrchestrationCreated,
    TaskScheduled,
    TimerCreated,
)
from tether.platform.workflows.view import describe
from tether.sdk.client import Client, GetWorkflowResponse, TetherClientError

COMMANDS = ("start", "status", "list", "history", "raise", "terminate", "pause", "resume",
            "purge")
_LIST_TIMES = ("createdAt", "lastUpdatedAt")
_EVENT_TIMES = ("timestamp", "fire_at", "scheduled_start")


class UsageError(TetherError):
    """Bad arguments the parser cannot catch (input that is not JSON)."""


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{what} must be JSON (quote a string: '\"text\"'): {exc}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``workflow`` subcommands on ``parser``."""
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("--address", help="the sidecar's URL (default: from the environment, "
                       "as tether.Client)")
    where.add_argument("--http-port", type=int, help="the sidecar's HTTP port on 127.0.0.1")
    common.add_argument("--api-token", help="sent as dapr-api-token (default: $DAPR_API_TOKEN)")
    common.add_argument("--output", "-o", choices=("text", "json"), default="text",
                        help="text for people (default), json for scripts")
    sub = parser.add_subparsers(dest="workflow_command", metavar="COMMAND")

    start = sub.add_parser("start", parents=[common], help="start an instance")
    start.add_argument("name", help="the workflow name")
    start.add_argument("--id", dest="instance_id", help="the instance id (default: a new UUID)")
    start.add_argument("--input", help="the input, as JSON")
    start.add_argument("--wait", action="store_true", help="wait until it finishes")
    start.add_argument("--timeout", type=float, default=60.0,
                       help="seconds --wait waits (default %(default)s)")

    status = sub.add_parser("status", parents=[common], help="show an instance's status")
    status.add_argument("instance_id")

    listing = sub.add_parser("list", parents=[common], help="list instances, newest first")
    listing.add_argument("--status", help="only these statuses, e.g. RUNNING,FAILED")
    listing.add_argument("--name", help="only instances of this workflow")
    listing.add_argument("--limit", type=int, default=100,
                         help="at most this many (default %(default)s)")
    listing.add_argument("--continuation-token", help="the next page's token")

    history = sub.add_parser("history", parents=[common],
                             help="an instance's history, one line per event")
    history.add_argument("instance_id")
    history.add_argument("--width", type=int, default=60,
                         help="payloads are cut to this many characters (default %(default)s)")

    raise_ = sub.add_parser("raise", parents=[common], help="raise an event to an instance")
    raise_.add_argument("instance_id")
    raise_.add_argument("event", help="the event name")
    raise_.add_argument("--data", help="the event data, as JSON")

    for name, text in (("terminate", "terminate an instance and its child workflows"),
                       ("pause", "suspend an instance"), ("resume", "resume an instance"),
                       ("purge", "delete a finished instance's state and history")):
        sub.add_parser(name, parents=[common], help=text).add_argument("instance_id")


def _client(args: argparse.Namespace) -> Client:
    address = args.address
    if args.http_port is not None:
        address = f"http://127.0.0.1:{args.http_port}"
    return Client(address, api_token=args.api_token)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


# --- views ---------------------------------------------------------------------------------------

def _when(value: datetime | str) -> str:
    """Every time the command prints, in one format: UTC, milliseconds, ``Z``."""
    if isinstance(value, str):
        value = parse_time(value)
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _with_times(record: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """``record`` with its time ``fields`` (those present) in :func:`_when`'s format."""
    return {k: _when(v) if k in fields and isinstance(v, str) else v for k, v in record.items()}


def _payload(value: str | None) -> str:
    return "-" if value is None or value == "" else value


def status_lines(state: GetWorkflowResponse) -> list[str]:
    props = state.properties
    lines = [
        f"instance   {state.instance_id}",
        f"workflow   {state.workflow_name}",
        f"status     {state.runtime_status}",
        f"created    {_when(state.created_at)}",
        f"updated    {_when(state.last_updated_at)}",
        f"input      {_payload(props.get('dapr.workflow.input'))}",
    ]
    if "dapr.workflow.output" in props:
        lines.append(f"output     {_payload(props['dapr.workflow.output'])}")
    if props.get("dapr.workflow.custom_status"):
        lines.append(f"custom     {props['dapr.workflow.custom_status']}")
    failure = state.failure
    if failure is not None:
        lines.append(f"failure    {failure.error_type}: {failure.message}")
    return lines


def _task_names(events: list[HistoryEvent]) -> dict[int, str]:
    names: dict[int, str] = {}
    for ev in events:
        if isinstance(ev, TaskScheduled):
            names[ev.task_id] = f"activity {ev.name!r}"
        elif isinstance(ev, SubOrchestrationCreated):
            names[ev.task_id] = f"child {ev.name!r}"
        elif isinstance(ev, TimerCreated):
            names[ev.task_id] = "timer"
    return names


def history_lines(events: list[HistoryEvent], width: int = 60) -> list[str]:
    """One line per event: UTC time, seconds since the earliest event, type, task id with the
    task's name, and a payload cut to ``width``. "-- step" lines open each execution step."""
    if not events:
        return []
    origin = min(ev.timestamp for ev in events)
    names = _task_names(events)
    lines = []
    for ev in events:
        head = f"{_when(ev.timestamp)}  {(ev.timestamp - origin).total_seconds():>+9.3f}s  "
        if isinstance(ev, OrchestratorStarted):
            lines.append(head + "-- step")
            continue
        text = describe(ev, width)
        task_id = getattr(ev, "task_id", None)
        scheduling = isinstance(ev, TaskScheduled | SubOrchestrationCreated | TimerCreated)
        if isinstance(task_id, int) and not scheduling and task_id in names:
            # completions name the task they complete (the scheduling line already does)
            text = text.replace(f"#{task_id}", f"#{task_id} {names[task_id]}", 1)
        lines.append(f"{head}{type(ev).__name__:<26}{text}".rstrip())
    return lines


def list_lines(instances: list[dict[str, Any]]) -> list[str]:
    rows = [("INSTANCE", "WORKFLOW", "STATUS", "CREATED", "UPDATED")]
    instances = [_with_times(i, _LIST_TIMES) for i in instances]
    rows += [(str(i.get("instanceID", "")), str(i.get("workflowName", "")),
              str(i.get("runtimeStatus", "")), str(i.get("createdAt", "")),
              str(i.get("lastUpdatedAt", ""))) for i in instances]
    widths = [max(len(r[c]) for r in rows) for c in range(4)]
    return ["  ".join([*(r[c].ljust(widths[c]) for c in range(4)), r[4]]).rstrip()
            for r in rows]


# --- commands ------------------------------------------------------------------------------------

def _start(client: Client, args: argparse.Namespace) -> None:
    data = _json_arg(args.input, "--input")
    iid = client.start_workflow(args.name, data, args.instance_id).instance_id
    if args.wait:
        state = client.wait_for_workflow_completion(iid, timeout_in_seconds=args.timeout)
        _show_state(state, args)
        return
    if args.output == "json":
        _print_json({"instanceID": iid})
    else:
        print(f"started workflow {args.name!r}: instance {iid}")


def _show_state(state: GetWorkflowResponse, args: argparse.Namespace) -> None:
    if args.output == "json":
        _print_json({"instanceID": state.instance_id, "workflowName": state.workflow_name,
                     "createdAt": _when(state.created_at),
                     "lastUpdatedAt": _when(state.last_updated_at),
                     "runtimeStatus": state.runtime_status,
                     "properties": dict(state.properties)})
    else:
        print("\n".join(status_lines(state)))


def _status(client: Client, args: argparse.Namespace) -> None:
    _show_state(client.get_workflow(args.instance_id), args)


def _list(client: Client, args: argparse.Namespace) -> None:
    page = client.list_workflows(status=args.status, name=args.name, limit=args.limit,
                                 continuation_token=args.continuation_token)
    if args.output == "json":
        body: dict[str, Any] = {
            "instances": [_with_times(i, _LIST_TIMES) for i in page.instances]}
        if page.continuation_token:
            body["continuationToken"] = page.continuation_token
        _print_json(body)
        return
    print("\n".join(list_lines(page.instances)))
    if page.continuation_token:
        print(f"(more: --continuation-token {page.continuation_token})")


def _history(client: Client, args: argparse.Namespace) -> None:
    events = client.get_workflow_history(args.instance_id)
    if args.output == "json":
        _print_json({"instanceID": args.instance_id,
                     "events": [_with_times(e.to_dict(), _EVENT_TIMES) for e in events]})
    else:
        print("\n".join(history_lines(events, args.width)))


def _raise(client: Client, args: argparse.Namespace) -> None:
    client.raise_workflow_event(args.instance_id, args.event, _json_arg(args.data, "--data"))
    _done(args, f"raised event {args.event!r} to instance {args.instance_id}")


def _done(args: argparse.Namespace, text: str) -> None:
    if args.output == "json":
        _print_json({"instanceID": args.instance_id, "accepted": True})
    else:
        print(text)


def _op(name: str, past: str) -> Callable[[Client, argparse.Namespace], None]:
    def run(client: Client, args: argparse.Namespace) -> None:
        getattr(client, f"{name}_workflow")(args.instance_id)
        _done(args, f"{past} instance {args.instance_id}")
    return run


HANDLERS: dict[str, Callable[[Client, argparse.Namespace], None]] = {
    "start": _start, "status": _status, "list": _list, "history": _history, "raise": _raise,
    "terminate": _op("terminate", "terminated"), "pause": _op("pause", "paused"),
    "resume": _op("resume", "resumed"), "purge": _op("purge", "purged"),
}


def main(args: argparse.Namespace) -> int:
    handler = HANDLERS.get(args.workflow_command or "")
    if handler is None:
        print(f"tether workflow: choose a command: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    try:
        with _client(args) as client:
            handler(client, args)
    except UsageError as exc:
        print(f"tether workflow: {exc}", file=sys.stderr)
        return 2
    except (TetherClientError, TimeoutError) as exc:
        print(f"tether workflow: {exc}", file=sys.stderr)
        return 1
    return 0
