"""Which exceptions mean Redis is out of reach."""

from __future__ import annotations

from redis.exceptions import RedisError

#: errors that mean Redis is unreachable, too slow, or refused a command
UNAVAILABLE = (RedisError, OSError)  # OSError covers the builtin TimeoutError of deadlines
