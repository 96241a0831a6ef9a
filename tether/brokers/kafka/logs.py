"""aiokafka's own log lines while a broker is away, bounded.

aiokafka logs every attempt: each failed connect, metadata update, coordinator lookup and
commit, tens of lines a second. :func:`quiet_aiokafka_repeats` lets each of its warnings
through once a minute per logger (Tether's own loops say it once, tether.brokers.outage).
"""

from __future__ import annotations

import logging

from tether.platform.logs import RepeatFilter

_REPEATS = RepeatFilter()


def quiet_aiokafka_repeats() -> None:
    """Put the repeat filter on every aiokafka logger, once aiokafka's modules are imported
    (a logger's filters do not apply to its children's records, so each module's gets it)."""
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if (name == "aiokafka" or name.startswith("aiokafka.")) \
                and isinstance(logger, logging.Logger) and _REPEATS not in logger.filters:
            logger.addFilter(_REPEATS)
