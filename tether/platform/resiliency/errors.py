"""The errors a policy itself raises (not the call's own): a block turns them into its
usual failure answer (a 500 with the operation's error code)."""

from __future__ import annotations

from tether.platform.errors import TetherError


class ResiliencyError(TetherError):
    """A policy ended the call: a timeout, or a circuit breaker that refused it."""
