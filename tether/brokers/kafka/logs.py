"""aiokafka's own log lines while a broker is away, bounded.

aiokafka logs every attempt: each failed connect, metadata update, coordinator lookup and
commit, tens of lines a second. :func:`quiet_aiokafka_repeats` lets each of its warnings
through once a minute per logger (Tether's own loops say it once, tether.brokers.outage).
"""

from __future__ import annotations

import logging
import time

#: aiokafka's repeats of one warning (same logger and message) are cut within this window
REPEAT_WINDOW = 60.0


class _Repeats(logging.Filter):
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


_REPEATS = _Repeats()


def quiet_aiokafka_repeats() -> None:
    """Put the repeat filter on every aiokafka logger, once aiokafka's modules are imported
    (a logger's filters do not apply to its children's records, so each module's gets it)."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == "aiokafka" or name.startswith("aiokafka.")) \
                and isinstance(logger, logging.Logger) and _REPEATS not in logger.filters:
            logger.addFilter(_REPEATS)
