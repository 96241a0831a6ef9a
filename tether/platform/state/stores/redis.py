"""`state.redis`: not written yet (the registry already checks its metadata)."""

from __future__ import annotations

from tether.platform.state.store import StateStore, StateStoreError


class RedisStateStore(StateStore):
    @classmethod
    async def open(
        cls,
        *,
        host: str,
        port: int,
        username: str | None,
        password: str | None,
        db: int,
        tls: bool,
        default_ttl: int | None,
        outbox_key: str,
    ) -> RedisStateStore:
        raise StateStoreError("state.redis is not implemented yet")
