"""Log lines that repeat, bounded: a library that logs every retry while a server is away
(aiokafka), or every malformed request a caller sends (aiohttp), says each thing once a
minute instead of flooding the log."""

from __future__ import annotations

import logging
import time

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
