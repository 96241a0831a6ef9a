"""`state.postgresql`: not written yet (the registry already checks its metadata)."""

from __future__ import annotations

from tether.platform.state.store import StateStore, StateStoreError


class PostgresStateStore(StateStore):
    @classmethod
    async def open(
        cls, conninfo: str, *, table: str, metadata_table: str, timeout: float
    ) -> PostgresStateStore:
        raise StateStoreError("state.postgresql is not implemented yet")
