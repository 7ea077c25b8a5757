"""Request limits for partner keys: token buckets shared by every web process, in the store or
(with ``[cache] redis_url``) in Redis."""
from __future__ import annotations

from typing import Protocol

from aggregator import store
from feeds import clock

#: what a 304 costs, against 1 for a full answer: polling politely is cheap
NOT_MODIFIED_COST = 0.25


class Buckets(Protocol):
    def take(self, key: str, cost: float, per_minute: int, burst: int, force: bool = False) -> float:
        """Take ``cost`` tokens; 0 when taken, else seconds to wait (nothing taken)."""


class StoreBuckets:
    """Buckets in the store (one short write transaction per request)."""

    def take(self, key: str, cost: float, per_minute: int, burst: int, force: bool = False) -> float:
        return store.take_tokens(key, cost, per_minute / 60.0, float(burst), clock.now().timestamp(), force)


# Atomic in Redis: read, refill, take (or not), write, in one script.
_TAKE = """
local b = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local rate, capacity, cost, now, force = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
    tonumber(ARGV[4]), ARGV[5] == '1'
local tokens = capacity
if b[1] then tokens = math.min(capacity, tonumber(b[1]) + math.max(0, now - tonumber(b[2])) * rate) end
if tokens < cost and not force then
  if rate > 0 then return tostring((cost - tokens) / rate) end
  return '60'
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - cost), 'updated', tostring(now))
redis.call('EXPIRE', KEYS[1], 86400)
return '0'
"""


class RedisBuckets:
    """Buckets in Redis: one script call per request, atomic across processes and hosts."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.script = self.client.register_script(_TAKE)

    def take(self, key: str, cost: float, per_minute: int, burst: int, force: bool = False) -> float:
        wait = self.script(keys=[f"feedhub:bucket:{key}"],
                           args=[per_minute / 60.0, burst, cost, clock.now().timestamp(), "1" if force else "0"])
        return float(wait)


def buckets_for(redis_url: str) -> Buckets:
    return RedisBuckets(redis_url) if redis_url else StoreBuckets()
