"""Log lines that repeat, bounded: a library that logs every retry while a server is away
(aiokafka), or every malformed request a caller sends (aiohttp), says each thing once a
minute instead of flooding the log.

And the one log format of ``tether run``, ``tether worker`` and ``tether.App``
(docs/observability.md, "Logs"): text or JSON lines with the app id and, where known, the
component, topic, event id, workflow instance id, trace id and span id."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal, TextIO

#: repeats of one warning (same logger and message) are cut within this window
REPEAT_WINDOW = 60.0


class RepeatFilter(logging.Filter):
    """Lets a warning or error through once per ``REPEAT_WINDOW`` per logger and message
    (lower levels pass)."""

    def __init__(self) -> None:
        super().__init__()
        self._last: dict[tuple[str, str], float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < REPEAT_WINDOW:
            return False
        if len(self._last) > 1000:  # messages formatted before logging never repeat exactly
            self._last.clear()
        self._last[key] = now
        return True


# --- one log format for tether run, tether worker and tether.App --------------------------

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
#: Dapr's --log-level names
LOG_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR,
}
#: the fields a line carries when its call (``extra=``) or its context (:func:`log_context`)
#: gives them, in this order
FIELDS = ("app_id", "component", "topic", "event_id", "instance_id", "trace_id", "span_id")

# the fields of the event (or workflow step) being handled: set per delivery task, so each
# task's lines carry its own
_context: ContextVar[dict[str, str]] = ContextVar("tether_log_context", default={})  # noqa: B039


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Lines logged inside carry ``fields`` (None values are left out)."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v}})
    try:
        yield
    finally:
        _context.reset(token)


def trace_fields(traceparent: str | None) -> dict[str, str | None]:
    """``trace_id`` and ``span_id`` of a W3C ``traceparent`` (version-trace-span-flags)."""
    parts = traceparent.split("-") if traceparent else []
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return {}
    return {"trace_id": parts[1], "span_id": parts[2]}


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Fields(logging.Filter):
    """Copies the context's fields onto a record (a call's own ``extra`` wins), and the
    process's app id."""

    def __init__(self, app_id: str | None) -> None:
        super().__init__()
        self.app_id = app_id

    def filter(self, record: logging.LogRecord) -> bool:
        fields = {"app_id": self.app_id, **_context.get()}
        for name, value in fields.items():
            if value and getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


def record_fields(record: logging.LogRecord) -> dict[str, str]:
    return {name: str(value) for name in FIELDS
            if (value := getattr(record, name, None)) is not None}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, msg, logger and the fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": now(),
            "level": record.levelname.lower(),
            "msg": record.getMessage(),
            "scope": record.name,
            **record_fields(record),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class TextFormatter(logging.Formatter):
    """``time LEVEL [logger: ]message key=value...``: the fields after the message, as
    daprd's text lines have them (without the app id, which the reader knows)."""

    def __init__(self, named: bool) -> None:
        name = "%(name)s: " if named else ""
        super().__init__(f"%(asctime)s %(levelname)-5s {name}%(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in record_fields(record).items() if k != "app_id")
        return f"{line} {extra}" if extra else line


def _as_warning(record: logging.LogRecord) -> bool:
    """A library's error is detail: Tether logs the failure it acts on (a start error, a
    retry) as its own ERROR, so an unreachable broker is one ERROR line, not one per
    library complaint."""
    if record.levelno == logging.ERROR:
        record.levelno, record.levelname = logging.WARNING, "WARNING"
    return True


def _handler(fmt: LogFormat, stream: TextIO | None, named: bool,
             app_id: str | None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(named))
    handler.addFilter(_Fields(app_id))
    return handler


def setup_logging(fmt: LogFormat = "text", stream: TextIO | None = None, *,
                  level: str = "info", app_id: str | None = None) -> None:
    """Send the ``tether`` loggers (from ``level``, a :data:`LOG_LEVELS` name) to stderr
    (or ``stream``) in ``fmt``, and the libraries' warnings and errors (aiokafka, psycopg,
    ...) too, named and as warnings: Python's bare fallback lines would break JSON logs.
    ``app_id``: the field every line carries unless its context names another app."""
    threshold = LOG_LEVELS[level]
    tether = logging.getLogger("tether")
    tether.handlers[:] = [_handler(fmt, stream, False, app_id)]
    tether.setLevel(threshold)
    tether.propagate = False
    libraries = logging.getLogger()
    handler = _handler(fmt, stream, True, app_id)
    handler.addFilter(_as_warning)
    # a library that logs every retry or every malformed request says each once a minute
    handler.addFilter(RepeatFilter())
    libraries.handlers[:] = [handler]
    libraries.setLevel(max(threshold, logging.WARNING))


def add_log_arguments(parser: argparse.ArgumentParser) -> None:
    """``--log-format``, ``--log-as-json`` and ``--log-level`` (Dapr's names), shared by
    ``tether run`` and ``tether worker``."""
    parser.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                        help="text or json lines on stderr (default text)")
    parser.add_argument("--log-as-json", dest="log_format", action="store_const", const="json",
                        help="as --log-format json (Dapr's flag)")
    parser.add_argument("--log-level", choices=tuple(LOG_LEVELS), default="info",
                        help="the lowest level logged (default info)")
