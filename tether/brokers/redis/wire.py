"""XADD and XACK packed straight into the Redis protocol (RESP).

redis-py's pipeline runs every argument through its generic encoder, which costs more than an
XADD or an XACK takes in Redis, so the hot commands are packed here and written with
:meth:`RedisBroker.send_packed`.
"""

from __future__ import annotations

from tether.brokers.redis.codec import RedisFields


def _bulk(value: bytes) -> bytes:
    return b"$%d\r\n%b\r\n" % (len(value), value)


def pack_command(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join([_bulk(arg) for arg in args])


def xadd_head(stream: str, maxlen: int) -> tuple[bytes, int]:
    """The packed ``XADD <stream> [MAXLEN ~ n] *`` and its arg count, for :func:`pack_xadd`."""
    args = [b"XADD", stream.encode()]
    if maxlen:
        args += [b"MAXLEN", b"~", str(maxlen).encode()]
    args.append(b"*")
    return b"".join(_bulk(arg) for arg in args), len(args)


def pack_xadd(head: bytes, fixed: int, fields: RedisFields) -> bytes:
    """One XADD: ``head`` and ``fixed`` from :func:`xadd_head`, plus the event's fields."""
    parts = [b"*%d\r\n" % (fixed + 2 * len(fields)), head]
    for name, value in fields.items():
        if isinstance(name, str):
            name = name.encode()
        if isinstance(value, str):
            value = value.encode()
        # _bulk inlined: this loop runs for every field of every published event
        parts.append(b"$%d\r\n%b\r\n$%d\r\n%b\r\n" % (len(name), name, len(value), value))
    return b"".join(parts)
