"""Issue 16, retention: batched DELETEs against dropping a partition, on a scratch table shaped
like `attempts` (same columns and indexes, ~1 KB request bodies). PostgreSQL only.

    BENCH_PROBE_DB=bench_ret_scratch PROBE_ROWS=1000000 python -m bench.partition_probe

Prints JSON: for batches of several sizes, the median and longest batch (one transaction:
what a concurrent writer of the same rows could wait on) and rows/s; for the partitioned table,
how long DETACH PARTITION and DROP TABLE take (the ACCESS EXCLUSIVE part). Drops its tables."""

from __future__ import annotations

import json
import os
import statistics
import time

import psycopg

URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test").rsplit("/", 1)[0]
DB = os.environ.get("BENCH_PROBE_DB", "bench_ret_scratch")
ROWS = int(os.environ.get("PROBE_ROWS", "1000000"))
DAYS = 10  # the old rows spread over this many days: one partition each

COLUMNS = """
    id bigint NOT NULL, delivery_id bigint NOT NULL, endpoint_id integer NOT NULL,
    number integer NOT NULL, trigger varchar(20) NOT NULL, started_at timestamp NOT NULL,
    duration_ms integer NOT NULL, request_url varchar(2048) NOT NULL,
    request_headers json NOT NULL, request_body text NOT NULL, response_status integer,
    response_headers json, response_body text, error_class varchar(20), error_message text,
    succeeded boolean NOT NULL
"""
FILL = """
INSERT INTO {table} SELECT g, g, g % 100, 1, 'automatic',
    now()::timestamp - interval '40 days' + (g % {days}) * interval '1 day' + (g % 86400) * interval '1 second',
    200, 'http://127.0.0.1:9000/hook', '{{"content-type": "application/json"}}',
    repeat(md5(g::text), 32), 200, '{{}}', 'ok', NULL, NULL, true
FROM generate_series(1, {rows}) AS g
"""


def timed(conn, sql: str, params=None) -> float:
    t0 = time.perf_counter()
    conn.execute(sql, params)
    conn.commit()
    return time.perf_counter() - t0


def batched(conn, batch: int, limit_batches: int | None) -> dict:
    """DELETE old rows `batch` at a time, one commit each, like services/retention.py."""
    times, deleted = [], 0
    started = time.perf_counter()
    while limit_batches is None or len(times) < limit_batches:
        t0 = time.perf_counter()
        cur = conn.execute(
            "DELETE FROM plain WHERE id IN (SELECT id FROM plain WHERE started_at < now() - "
            "interval '20 days' ORDER BY started_at LIMIT %s)",
            (batch,),
        )
        conn.commit()
        times.append(time.perf_counter() - t0)
        deleted += cur.rowcount
        if cur.rowcount < batch:
            break
    elapsed = time.perf_counter() - started
    return {
        "batch": batch,
        "batches": len(times),
        "rows": deleted,
        "rows_per_s": round(deleted / elapsed),
        "median_batch_ms": round(statistics.median(times) * 1000, 1),
        "longest_batch_ms": round(max(times) * 1000, 1),
    }


def main() -> None:
    with psycopg.connect(f"{URL}/postgres", autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB,)).fetchone():
            admin.execute(f'CREATE DATABASE "{DB}"')
    out: dict = {"rows": ROWS}
    with psycopg.connect(f"{URL}/{DB}") as conn:
        conn.execute("DROP TABLE IF EXISTS plain, parted CASCADE")
        conn.execute(f"CREATE TABLE plain ({COLUMNS}, PRIMARY KEY (id))")
        t = timed(conn, FILL.format(table="plain", rows=ROWS, days=DAYS))
        conn.execute("CREATE UNIQUE INDEX ON plain (delivery_id, number)")
        conn.execute("CREATE INDEX ON plain (started_at)")
        conn.execute("CREATE INDEX ON plain (endpoint_id)")
        conn.commit()
        out["fill_s"] = round(t, 1)
        out["size_mb"] = round(
            conn.execute("SELECT pg_total_relation_size('plain')").fetchone()[0] / 2**20
        )
        # Half the rows (the 5 oldest days) in batches of each size; the largest size deletes
        # the rest to the end, so its rows/s is for a whole purge.
        out["batched"] = [batched(conn, b, 100) for b in (500, 2000)]
        out["batched"].append(batched(conn, 5000, None))

        # Partitioned per day: the primary key must then include the partition key.
        conn.execute(
            f"CREATE TABLE parted ({COLUMNS}, PRIMARY KEY (id, started_at)) "
            "PARTITION BY RANGE (started_at)"
        )
        for d in range(DAYS + 1):
            conn.execute(
                f"CREATE TABLE parted_{d} PARTITION OF parted FOR VALUES FROM "
                f"(date_trunc('day', now()::timestamp) - interval '{40 - d} days') TO "
                f"(date_trunc('day', now()::timestamp) - interval '{39 - d} days')"
            )
        conn.execute("CREATE TABLE parted_rest PARTITION OF parted DEFAULT")
        conn.commit()
        t = timed(conn, FILL.format(table="parted", rows=ROWS, days=DAYS))
        conn.execute("CREATE INDEX ON parted (delivery_id, number)")
        conn.execute("CREATE INDEX ON parted (started_at)")
        conn.execute("CREATE INDEX ON parted (endpoint_id)")
        conn.commit()
        out["parted_fill_s"] = round(t, 1)
        drops = []
        for d in range(DAYS + 1):
            n = conn.execute(f"SELECT count(*) FROM parted_{d}").fetchone()[0]  # noqa: S608
            conn.commit()
            detach = timed(conn, f"ALTER TABLE parted DETACH PARTITION parted_{d}")
            drop = timed(conn, f"DROP TABLE parted_{d}")
            drops.append({"rows": n, "detach_ms": detach * 1000, "drop_ms": drop * 1000})
        full = [x for x in drops if x["rows"]]
        out["partitions"] = {
            "dropped": len(full),
            "rows_per_partition": round(statistics.median(x["rows"] for x in full)),
            "median_detach_ms": round(statistics.median(x["detach_ms"] for x in full), 1),
            "longest_detach_ms": round(max(x["detach_ms"] for x in full), 1),
            "median_drop_ms": round(statistics.median(x["drop_ms"] for x in full), 1),
            "longest_drop_ms": round(max(x["drop_ms"] for x in full), 1),
        }
        conn.execute("DROP TABLE IF EXISTS plain, parted CASCADE")
        conn.commit()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
