"""``redis://`` and ``rediss://``: the broker over Redis Streams consumer groups.

A stream is not partitioned by key, so a topic is N streams (``<ns>:<topic>:p<i>``); an
event's ``partitionkey`` picks one with the same crc32 hash as every other backend. Members
of a group split the streams through leases (one live owner per stream and group); only the
owner reads a stream, with XREADGROUP under its own consumer name, so the shared
:class:`Subscription` engine gives one active handler per key. A new owner first takes over
every entry still pending in the group (XAUTOCLAIM) and delivers those before new ones, so a
key's order survives a crash or a rebalance. Redis keeps each entry's delivery count, which
drives dead-lettering across crashes. The design is written up in docs/brokers-redis.md.

URL: ``redis://[:password@]host:port/db?partitions=4&session_timeout=10&heartbeat_interval=1``
with optional ``block`` (seconds an idle XREADGROUP waits), ``namespace`` (key prefix,
default ``tether``) and ``maxlen`` (approximate stream trimming, off by default). Any other
query option goes to redis-py as it is (``socket_timeout``, ``ssl_cert_reqs``, ...).

Modules: ``settings`` (the URL), ``keys`` (key layout), ``scripts`` (the group protocol's Lua
scripts), ``wire`` (hand-packed XADD / XACK), ``broker`` (connection, topics, publishing),
``subscription`` (leases, takeover, fetching, acks), ``errors`` (what counts as unavailable).
"""

from __future__ import annotations

from tether.brokers.redis.broker import RedisBroker
from tether.brokers.redis.keys import Keys
from tether.brokers.redis.settings import RedisSettings, parse_url
from tether.brokers.redis.subscription import RedisSubscription


def from_url(url: str) -> RedisBroker:
    """``redis://[:password@]host:port/db?options`` or ``rediss://...`` (see module doc)."""
    return RedisBroker(url)


__all__ = ["Keys", "RedisBroker", "RedisSettings", "RedisSubscription", "from_url", "parse_url"]
