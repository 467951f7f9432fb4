"""Login throttling in Redis: at most 5 failures per account and per address in 15 minutes."""

from __future__ import annotations

import logging

from redis import Redis
from redis.exceptions import RedisError

from ..queues import redis_key

log = logging.getLogger(__name__)
MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


def _keys(email: str, address: str | None) -> list[str]:
    """In this deployment's namespace: another one sharing the Redis counts its own."""
    keys = [redis_key("login-failures", "account", (email or "").strip().lower())]
    if address:
        keys.append(redis_key("login-failures", "address", address))
    return keys


def is_throttled(redis: Redis, email: str, address: str | None) -> bool:
    """True when the account or the address has had too many failures lately.

    Fails open (with a warning) when Redis is down: operators must still be able to log in
    during an incident; the password check itself is unchanged."""
    try:
        counts = redis.mget(_keys(email, address))
    except RedisError as exc:
        log.warning("login throttle unavailable, allowing the attempt: %s", exc)
        return False
    return any(c is not None and int(c) >= MAX_FAILURES for c in counts)


def record_failure(redis: Redis, email: str, address: str | None) -> None:
    """Count a failure; the window starts at the first failure and is not extended."""
    try:
        with redis.pipeline() as pipe:
            for key in _keys(email, address):
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS, nx=True)
            pipe.execute()
    except RedisError as exc:
        log.warning("login throttle unavailable, failure not counted: %s", exc)


def clear_account(redis: Redis, email: str) -> None:
    """A successful login clears its account's count (the address count stays)."""
    try:
        redis.delete(_keys(email, None)[0])
    except RedisError as exc:
        log.warning("login throttle unavailable: %s", exc)
