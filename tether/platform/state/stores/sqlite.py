"""`state.sqlite`: not written yet (the registry already checks its metadata)."""

from __future__ import annotations

from pathlib import Path

from tether.platform.state.store import StateStore, StateStoreError


class SqliteStateStore(StateStore):
    @classmethod
    async def open(
        cls, path: Path, *, table: str, metadata_table: str, timeout: float, busy_timeout: float
    ) -> SqliteStateStore:
        raise StateStoreError("state.sqlite is not implemented yet")
