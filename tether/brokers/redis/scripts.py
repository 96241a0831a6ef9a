"""The group protocol as Lua scripts: on the server's clock, one round trip each."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

# KEYS[1] members zset (score = expiry in ms); ARGV member, ttl ms -> live members
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# KEYS[1] members zset -> how many have not expired
LIVE_MEMBERS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], now, '+inf')
"""

LEASE_RENEWED, LEASE_ACQUIRED, LEASE_HELD = 1, 2, 0

# KEYS lease keys; ARGV member, ttl ms -> per key: 1 renewed, 2 newly acquired, 0 held by another
CLAIM = """
local out = {}
for i, key in ipairs(KEYS) do
  local owner = redis.call('GET', key)
  if owner == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    out[i] = 1
  elseif not owner then
    redis.call('SET', key, ARGV[1], 'PX', ARGV[2])
    out[i] = 2
  else
    out[i] = 0
  end
end
return out
"""

# KEYS[1] members zset (or '' to stay registered), KEYS[2..] lease keys; ARGV member
RELEASE = """
if KEYS[1] ~= '' then redis.call('ZREM', KEYS[1], ARGV[1]) end
for i = 2, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Scripts:
    heartbeat: AsyncScript
    claim: AsyncScript
    release: AsyncScript

    @classmethod
    def register(cls, client: aioredis.Redis) -> Scripts:
        return cls(
            heartbeat=client.register_script(HEARTBEAT),
            claim=client.register_script(CLAIM),
            release=client.register_script(RELEASE),
        )
