"""Worker presence in Redis, the reading side and the key names: who is running and what it
is sending (delivery/heartbeat.py writes it), and when the sweeper last ran. Beside the queues
because the System page and the metrics read it without importing the delivery wing."""

from __future__ import annotations

import json

from redis import Redis

from .queues import redis_key


def worker_key(name: str) -> str:
    """The worker's hash (in an app context: it names the app's namespace)."""
    return redis_key("worker", name)


def index_key() -> str:
    return redis_key("workers")


# The sweeper writes its last run here (delivery/sweeper.py); the System page reads it.
def last_run_key() -> str:
    return redis_key("sweeper", "last-run")


def list_workers(redis: Redis) -> list[dict]:
    """This app's live workers (their hash has not expired), oldest first."""
    index = index_key()
    names = [n.decode() for n in redis.zrange(index, 0, -1)]
    if not names:
        return []
    with redis.pipeline() as pipe:
        for name in names:
            pipe.hgetall(worker_key(name))
        rows = pipe.execute()
    workers, gone = [], []
    for name, raw in zip(names, rows, strict=True):
        if not raw:
            gone.append(name)
            continue
        row = {k.decode(): v.decode() for k, v in raw.items()}
        workers.append(
            {
                "name": name,
                "host": row.get("host", ""),
                "pid": int(row.get("pid", 0)),
                "state": row.get("state", ""),
                "threads": int(row.get("threads", 0)),
                "in_flight": json.loads(row.get("in_flight", "[]")),
                "started_at": float(row.get("started_at", 0)),
                "last_seen": float(row.get("last_seen", 0)),
            }
        )
    if gone:
        redis.zrem(index, *gone)
    return sorted(workers, key=lambda w: w["started_at"])
