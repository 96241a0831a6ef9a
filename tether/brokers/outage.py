"""An outage in a bounded number of log lines, however long it lasts.

While a broker server is away, every retry of every loop would log a line: tens a second.
An :class:`Outage` logs one warning when an operation starts failing and one info when it
works again (the attempts in between at debug level).
"""

from __future__ import annotations

import logging


class Outage:
    """One operation (a subscription's commits, its fetches, ...) that may fail for a while."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self.failing = False

    def failed(self, exc: BaseException | str) -> None:
        if self.failing:
            self._log.debug("%s still failing: %s", self._what, exc)
            return
        self.failing = True
        self._log.warning("%s failing: %s (retrying; logged again once it works)",
                          self._what, exc)

    def recovered(self) -> None:
        if self.failing:
            self.failing = False
            self._log.info("%s working again", self._what)
