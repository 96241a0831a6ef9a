"""Log output of ``tether run``: Tether's own lines and the apps' output lines.

Tether's own lines go to stderr in the one format of tether.platform.logs (``text`` or
``json``). App output goes to stdout, prefixed with the app id so several apps can share a
terminal. Dapr's status lines ("You're up and running! ...", "Exited App successfully") go
to stdout in text mode, as the dapr CLI prints them, for scripts that wait for them.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

from tether.platform.logs import LOG_FORMATS, LOG_LEVELS, LogFormat, now, setup_logging

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "AppOutput", "LogFormat", "setup_logging", "status"]

log = logging.getLogger("tether.cli.run")

UP = "You're up and running! Dapr logs will appear here."
UP_WITH_APP = "You're up and running! Both Dapr and your app logs will appear here."
EXITED_APP = "Exited App successfully"
EXITED_DAPR = "Exited Dapr successfully"


def status(fmt: LogFormat, message: str, app_id: str, stream: TextIO | None = None) -> None:
    """One of Dapr's status lines: on stdout with the CLI's check mark (text), or an info
    line of the log (json, where stdout is the apps' JSON lines)."""
    if fmt == "json":
        log.info("%s", message, extra={"app_id": app_id})
        return
    out = stream or sys.stdout
    out.write(f"\N{WHITE HEAVY CHECK MARK}  {message}\n")
    out.flush()


class AppOutput:
    """Writes one app's output lines, prefixed (text) or wrapped (json)."""

    def __init__(self, app_id: str, fmt: LogFormat, stream: TextIO | None = None) -> None:
        self.app_id = app_id
        self.fmt = fmt
        self.stream = stream

    def line(self, text: str) -> None:
        stream = self.stream or sys.stdout
        if self.fmt == "json":
            out = json.dumps({"time": now(), "app_id": self.app_id, "scope": "app", "msg": text})
        else:
            out = f"== APP - {self.app_id} == {text}"
        stream.write(out + "\n")
        stream.flush()
