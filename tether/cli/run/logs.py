"""Log output of ``tether run``: Tether's own lines and the apps' output lines.

Two formats: ``text`` (readable, for a terminal) and ``json`` (one object per line, for log
shippers). App output goes to stdout, prefixed with the app id so several apps can share a
terminal; Tether's own messages go to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

from tether.platform.logs import RepeatFilter

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
LOGGER = "tether"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": _now(),
            "level": record.levelname.lower(),
            "scope": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _handler(fmt: LogFormat, stream: TextIO | None, text: str) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(text, "%H:%M:%S")
    handler.setFormatter(formatter)
    return handler


def _as_warning(record: logging.LogRecord) -> bool:
    """A library's error is detail: Tether logs the failure it acts on (a start error, a
    retry) as its own ERROR, so an unreachable broker is one ERROR line, not one per
    library complaint."""
    if record.levelno == logging.ERROR:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def setup_logging(fmt: LogFormat, stream: TextIO | None = None) -> None:
    """Send the ``tether`` loggers (from INFO) to stderr (or ``stream``) in ``fmt``, and the
    libraries' warnings and errors (aiokafka, psycopg, ...) too, named (their scope) and
    as warnings: Python's bare fallback lines would break ``--log-format json``."""
    tether = logging.getLogger(LOGGER)
    tether.handlers[:] = [_handler(fmt, stream, "%(asctime)s %(levelname)-5s %(message)s")]
    tether.setLevel(logging.INFO)
    tether.propagate = False
    libraries = logging.getLogger()
    handler = _handler(fmt, stream, "%(asctime)s %(levelname)-5s %(name)s: %(message)s")
    handler.addFilter(_as_warning)
    # a library that logs every retry or every malformed request says each once a minute
    handler.addFilter(RepeatFilter())
    libraries.handlers[:] = [handler]
    libraries.setLevel(logging.WARNING)


class AppOutput:
    """Writes one app's output lines, prefixed (text) or wrapped (json)."""

    def __init__(self, app_id: str, fmt: LogFormat, stream: TextIO | None = None) -> None:
        self.app_id = app_id
        self.fmt = fmt
        self.stream = stream

    def line(self, text: str) -> None:
        stream = self.stream or sys.stdout
        if self.fmt == "json":
            out = json.dumps({"time": _now(), "app_id": self.app_id, "scope": "app", "msg": text})
        else:
            out = f"== APP - {self.app_id} == {text}"
        stream.write(out + "\n")
        stream.flush()
