"""Login throttling in Redis: at most 5 failures per account and per address in 15 minutes.

Every attempt is counted *before* its password is checked, in one atomic Redis transaction
(MULTI/EXEC: INCR and EXPIRE NX for both keys), and only an attempt whose counts are still
within the limit goes on to the check. N parallel guesses therefore get at most 5 checks
between them; checking first and counting after the (slow, scrypt) check let all N through.
A login that succeeds takes its attempt back: the account's count is cleared and the
address's count goes down by one, so the limit counts failures.

The account key carries a hash of the typed email, never the text itself: a password typed
into the email field must not end up in Redis either."""

from __future__ import annotations

import hashlib
import logging

from redis import Redis
from redis.exceptions import RedisError

from ..queues import redis_key

log = logging.getLogger(__name__)
MAX_FAILURES = 5
WINDOW_SECONDS = 15 * 60


def _keys(email: str, address: str | None) -> list[str]:
    """In this deployment's namespace: another one sharing the Redis counts its own."""
    typed = (email or "").strip().lower().encode()
    keys = [redis_key("login-failures", "account", hashlib.sha256(typed).hexdigest()[:32])]
    if address:
        keys.append(redis_key("login-failures", "address", address))
    return keys


def count_attempt(redis: Redis, email: str, address: str | None) -> bool:
    """Count this attempt against its account and address; False when either is over the
    limit (refuse without checking the password). The window starts at the first attempt
    and is not extended.

    Fails open (with a warning) when Redis is down: operators must still be able to log in
    during an incident; the password check itself is unchanged."""
    keys = _keys(email, address)
    try:
        with redis.pipeline(transaction=True) as pipe:
            for key in keys:
                pipe.incr(key)
                pipe.expire(key, WINDOW_SECONDS, nx=True)
            replies = pipe.execute()
    except RedisError as exc:
        log.warning("login throttle unavailable, allowing the attempt: %s", exc)
        return True
    return all(count <= MAX_FAILURES for count in replies[0::2])


def forgive_attempt(redis: Redis, email: str, address: str | None) -> None:
    """A successful login: clear its account's count, take its attempt off the address's."""
    account, *address_key = _keys(email, address)
    try:
        with redis.pipeline(transaction=True) as pipe:
            pipe.delete(account)
            for key in address_key:
                pipe.decr(key)
                pipe.expire(key, WINDOW_SECONDS, nx=True)  # never a count without an end
            pipe.execute()
    except RedisError as exc:
        log.warning("login throttle unavailable: %s", exc)


def count_code_attempt(redis: Redis, user_id: int) -> bool:
    """The same limit on second-factor codes, per account: 5 wrong codes in 15 minutes."""
    key = redis_key("mfa-failures", str(user_id))
    try:
        with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, WINDOW_SECONDS, nx=True)
            count, _ = pipe.execute()
    except RedisError as exc:
        log.warning("login throttle unavailable, allowing the code: %s", exc)
        return True
    return count <= MAX_FAILURES


def forgive_code_attempts(redis: Redis, user_id: int) -> None:
    try:
        redis.delete(redis_key("mfa-failures", str(user_id)))
    except RedisError as exc:
        log.warning("login throttle unavailable: %s", exc)
