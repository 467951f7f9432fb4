"""History for the benchmarks (issue 16): N delivered deliveries already in the tables, built
with SQL in bulk, so a scenario runs against a database that looks like 30 days of traffic.

    python -m bench.history --db postgresql|sqlite --rows N [--url URL]

What one "row" is: one delivery (status succeeded, one attempt). Fan-out: one event goes to
FANOUT (3) deliveries on three different history endpoints, so N rows are N deliveries, N
attempts and ceil(N / 3) events. Each attempt holds a ~1 KB request body (the JSON envelope
with varying values: hex digests, amounts, ids; nothing repeats from row to row) and a ~50
byte response.

- Times: spread evenly from 29.5 days ago to 1 hour ago, at build time: older than any
  scenario's rows, newer than the default retention (WEBHOOK_RETENTION_DAYS=30), so the
  sweeper's purge does not delete them mid-run. A database kept for days ages: see
  `retention_days_for`, which the scenario uses so the history still counts as in retention.
- Endpoints: HISTORY_ENDPOINTS (100) of their own, disabled, pointing at 127.0.0.1:9 and
  subscribed to HISTORY_EVENT_TYPE (transaction.refunded), never to the scenarios' event
  (transaction.approved): no scenario event fans out to them and no worker sends to them.
- Speed: PostgreSQL drops the three tables' secondary indexes, unique and foreign-key
  constraints, inserts with INSERT ... SELECT generate_series in chunks, then recreates them
  (one sort per index instead of 10M index insertions) and VACUUMs (ANALYZE), so autovacuum
  does not start on the fresh rows during a scenario. SQLite: the same with a recursive CTE.
- The bounds of the history (largest ids, newest received_at) are written to the table
  `bench_history` (the marker): `HistoryDatabase` (bench/history_scenarios.py) deletes a
  scenario's own rows above them by index, and `ensure_history_pg` rebuilds the kept
  database only when the marker differs (rows, builder version, Alembic head).

The database must be migrated and the catalog seeded (bench.procs.migrate_and_seed)."""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine

from . import procs

# Bump when the rows the builder makes change: a kept database is rebuilt.
BUILDER_VERSION = 2  # 2: deliveries carry the event type and merchant (0011)
FANOUT = 3  # deliveries per event
HISTORY_ENDPOINTS = 100
HISTORY_EVENT_TYPE = "transaction.refunded"
HISTORY_DAYS = 29.5  # the oldest row's age at build time
NEWEST_AGE = timedelta(hours=1)  # the newest row's age at build time
CHUNK = 500_000  # deliveries per INSERT statement (and per commit)
HISTORY_TABLES = ("events", "deliveries", "attempts")
MARKER = "bench_history"
PG_HISTORY_DB = "bench_history_pg"
SQLITE_HISTORY_FILE = procs.ROOT / "var" / "bench" / "bench_history_sqlite.db"


@dataclass
class History:
    """What a build made; also the marker's row."""

    rows: int
    fanout: int
    builder_version: int
    alembic_head: str
    built_at: datetime
    max_endpoint_id: int
    max_delivery_id: int
    max_attempt_id: int
    max_received_at: datetime
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def code_alembic_head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(str(procs.ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(procs.ROOT / "migrations"))
    return ScriptDirectory.from_config(config).get_current_head() or ""


def build_history(
    database_url: str,
    n: int,
    *,
    endpoints: int = HISTORY_ENDPOINTS,
    environ: dict[str, str] | None = None,
    progress: bool = True,
) -> History:
    """Add `n` delivered deliveries (with attempts and events) to a migrated, seeded database;
    returns the bounds, also written to the marker table. `environ`: the app's environment
    for creating the endpoints (their secrets are encrypted with its key), by default the
    bench's (bench.procs.app_environ)."""
    started = time.monotonic()
    endpoint_ids = add_history_endpoints(database_url, endpoints, environ)
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            dialect = conn.dialect.name
            d0 = conn.execute(text("SELECT coalesce(max(id), 0) FROM deliveries")).scalar()
            a0 = conn.execute(text("SELECT coalesce(max(id), 0) FROM attempts")).scalar()
            conn.commit()
        now = datetime.utcnow().replace(microsecond=0)  # naive UTC, as the app stores
        start = now - timedelta(days=HISTORY_DAYS)
        span = (now - NEWEST_AGE) - start
        params = {
            "n": n,
            "f": FANOUT,
            "d0": d0,
            "a0": a0,
            "ep0": endpoint_ids[0],
            "m": len(endpoint_ids),
            "etype": HISTORY_EVENT_TYPE,
        }
        if dialect == "postgresql":
            _build_pg(engine, params, start, span, progress)
        else:
            _build_sqlite(engine, params, start, span, progress)
        seconds = time.monotonic() - started
        history = History(
            rows=n,
            fanout=FANOUT,
            builder_version=BUILDER_VERSION,
            alembic_head=code_alembic_head(),
            built_at=now,
            max_endpoint_id=endpoint_ids[-1],
            max_delivery_id=d0 + n,
            max_attempt_id=a0 + n,
            max_received_at=now - NEWEST_AGE + timedelta(seconds=1),
            seconds=seconds,
        )
        write_marker(engine, history)
    finally:
        engine.dispose()
    if progress:
        print(
            f"history: {n:,} deliveries/attempts, {math.ceil(n / FANOUT):,} events in "
            f"{history.seconds:.1f}s ({history.rows_per_second:,.0f} rows/s)",
            flush=True,
        )
    return history


def add_history_endpoints(
    database_url: str, count: int, environ: dict[str, str] | None
) -> list[int]:
    """`count` disabled endpoints on 127.0.0.1:9, subscribed to the history's event type;
    consecutive ids (the SQL picks an event's endpoints by arithmetic)."""
    from webhook_admin import create_app
    from webhook_admin.extensions import db
    from webhook_admin.models import Endpoint, EventType
    from webhook_admin.models.endpoint import DISABLED_MANUAL
    from webhook_admin.services.endpoint_secrets import issue_secret

    environ = environ or procs.app_environ(database_url, "redis://127.0.0.1:1/0")
    app = create_app({**environ, "DATABASE_URL": database_url})
    with app.app_context():
        event_type = db.session.scalar(
            db.select(EventType).where(EventType.name == HISTORY_EVENT_TYPE)
        )
        if event_type is None:
            raise RuntimeError("seed the catalog first (flask catalog seed)")
        now = datetime.utcnow()
        added = []
        for i in range(count):
            endpoint = Endpoint(
                url=f"http://127.0.0.1:9/history/{i}",
                description="bench history (issue 16): never sent to",
                enabled=False,
                disabled_reason=DISABLED_MANUAL,
                disabled_note="bench history",
                disabled_by="bench",
                disabled_at=now,
                custom_headers={},
                event_types=[event_type],
            )
            issue_secret(endpoint)
            db.session.add(endpoint)
            added.append(endpoint)
        db.session.commit()
        ids = [e.id for e in added]
        db.session.remove()
        db.engine.dispose()
    if ids != list(range(ids[0], ids[0] + count)):
        raise RuntimeError("history endpoints did not get consecutive ids")
    return ids


# --- PostgreSQL ----------------------------------------------------------------------------

# Event e (1-based) of the build; delivery i goes to event (i - 1) / f + 1 on endpoint
# ep0 + (e * f + (i - 1) % f) % m: f consecutive endpoints, different for each of an
# event's deliveries. Times: t0 + (e - 1) * step.
PG_EVENTS = """
INSERT INTO events (id, type, data, merchant_id, occurred_at, received_at, body_sha256,
                    source, delivery_count)
SELECT 'evt_hist_' || (:d0 + e), :etype,
       json_build_object('refund_id', 'rf_' || left(md5(e::text), 16),
                         'transaction_id', 'txn_' || substr(md5(e::text), 17, 10),
                         'merchant_id', 'm_' || (e % 997), 'amount', (e * 7919) % 100000,
                         'currency', 'EUR'),
       'm_' || (e % 997), t - interval '150 milliseconds', t,
       encode(sha256(int8send(e)), 'hex'), 'ingest', :f
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS e,
     LATERAL (SELECT CAST(:t0 AS timestamp) + (e - 1) * CAST(:step AS interval) AS t) AS x
"""

PG_DELIVERIES = """
INSERT INTO deliveries (id, event_id, endpoint_id, status, attempts_count, next_trigger,
                        last_status_code, last_attempt_at, created_at, completed_at,
                        event_type, merchant_id)
SELECT :d0 + i, 'evt_hist_' || (:d0 + e), :ep0 + (e * :f + (i - 1) % :f) % :m, 'succeeded', 1,
       'automatic', 200, t + interval '40 milliseconds', t + interval '5 milliseconds',
       t + interval '260 milliseconds', :etype, 'm_' || (e % 997)
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i,
     LATERAL (SELECT (i - 1) / :f + 1 AS e) AS y,
     LATERAL (SELECT CAST(:t0 AS timestamp) + (e - 1) * CAST(:step AS interval) AS t) AS x
"""

# The request body: the envelope the worker sends (~1 KB), values varying per row (five
# sha512 digests: 640 hex characters nothing can dedupe).
PG_ATTEMPTS = """
INSERT INTO attempts (id, delivery_id, endpoint_id, number, trigger, started_at, duration_ms,
                      request_url, request_headers, request_body, response_status,
                      response_headers, response_body, succeeded)
SELECT :a0 + i, :d0 + i, ep, 1, 'automatic', t + interval '40 milliseconds',
       20 + (i * 31) % 400,
       'http://127.0.0.1:9/history/' || (ep - :ep0),
       json_build_object('content-type', 'application/json', 'user-agent', 'webhook-admin/1',
                         'webhook-id', 'evt_hist_' || (:d0 + e),
                         'webhook-timestamp', extract(epoch FROM t)::bigint::text,
                         'webhook-signature', 'v1,********'),
       '{"id":"evt_hist_' || (:d0 + e) || '","type":"' || :etype || '","timestamp":"'
       || to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS"Z"') || '","data":{"refund_id":"rf_'
       || left(md5(e::text), 16) || '","transaction_id":"txn_' || substr(md5(e::text), 17, 10)
       || '","merchant_id":"m_' || (e % 997) || '","terminal_id":"term_' || (e % 4099)
       || '","amount":' || ((e * 7919) % 100000) || ',"currency":"EUR","card":{"brand":"visa",'
       || '"last4":"' || lpad(((e * 37) % 10000)::text, 4, '0') || '","fingerprint":"'
       || encode(sha512(int8send(i * 8 + 1)), 'hex') || '"},"reason":"customer_request",'
       || '"metadata":{"order_ref":"' || encode(sha512(int8send(i * 8 + 2)), 'hex')
       || '","basket":"' || encode(sha512(int8send(i * 8 + 3)), 'hex')
       || '","session":"' || encode(sha512(int8send(i * 8 + 4)), 'hex')
       || '","trace":"' || encode(sha512(int8send(i * 8 + 5)), 'hex') || '"}}}',
       200, json_build_object('content-type', 'application/json'),
       '{"received": true,"ref":"' || left(md5(i::text), 24) || '"}', true
FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i,
     LATERAL (SELECT (i - 1) / :f + 1 AS e) AS y,
     LATERAL (SELECT :ep0 + (e * :f + (i - 1) % :f) % :m AS ep) AS z,
     LATERAL (SELECT CAST(:t0 AS timestamp) + (e - 1) * CAST(:step AS interval) AS t) AS x
"""

# What the bulk insert leaves out and puts back after: indexes that back no constraint, and
# the unique and foreign-key constraints (primary keys stay: the ids are inserted in order).
PG_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE schemaname = current_schema() AND tablename = ANY(:tables)
  AND indexname NOT IN (SELECT conname FROM pg_constraint)
"""
PG_CONSTRAINTS = """
SELECT c.conname, c.conrelid::regclass::text, pg_get_constraintdef(c.oid), c.contype
FROM pg_constraint c
WHERE c.contype IN ('u', 'f')
  AND (c.conrelid::regclass::text = ANY(:tables) OR c.confrelid::regclass::text = ANY(:tables))
"""


def _build_pg(engine: Engine, params: dict, start: datetime, span: timedelta, progress: bool):
    n, f = params["n"], params["f"]
    events = math.ceil(n / f)
    step = span / max(events, 1)
    times = {"t0": start, "step": step}
    tables = list(HISTORY_TABLES)
    with engine.connect() as conn:
        conn.execute(text("SET synchronous_commit = off"))
        conn.execute(text("SET maintenance_work_mem = '512MB'"))
        indexes = conn.execute(text(PG_INDEXES), {"tables": tables}).all()
        constraints = conn.execute(text(PG_CONSTRAINTS), {"tables": tables}).all()
        # Foreign keys first: a unique constraint may be what one of them references.
        for name, table, _definition, _kind in sorted(constraints, key=lambda c: c[3] != "f"):
            conn.execute(text(f'ALTER TABLE {table} DROP CONSTRAINT IF EXISTS "{name}"'))
        for name, _definition in indexes:
            conn.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
        conn.commit()
        _chunks(conn, PG_EVENTS, events, {**params, **times}, "events", progress)
        _chunks(conn, PG_DELIVERIES, n, {**params, **times}, "deliveries", progress)
        _chunks(conn, PG_ATTEMPTS, n, {**params, **times}, "attempts", progress)
        t = time.monotonic()
        for _name, definition in indexes:
            conn.execute(text(definition))
            conn.commit()
        for name, table, definition, _kind in sorted(constraints, key=lambda c: c[3] == "f"):
            conn.execute(text(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))
            conn.commit()
        for table in ("deliveries", "attempts"):
            seq = f"pg_get_serial_sequence('{table}', 'id')"
            conn.execute(text(f"SELECT setval({seq}, max(id)) FROM {table}"))  # noqa: S608
        conn.commit()
        if progress:
            print(f"  indexes and constraints: {time.monotonic() - t:.1f}s", flush=True)
    t = time.monotonic()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in (*HISTORY_TABLES, "endpoints", "endpoint_event_types"):
            conn.execute(text(f"VACUUM (ANALYZE) {table}"))
    if progress:
        print(f"  vacuum analyze: {time.monotonic() - t:.1f}s", flush=True)


def _chunks(conn: Connection, sql: str, total: int, params: dict, what: str, progress: bool):
    t = time.monotonic()
    for lo in range(1, total + 1, CHUNK):
        hi = min(total, lo + CHUNK - 1)
        conn.execute(text(sql), {**params, "lo": lo, "hi": hi})
        conn.commit()
    if progress:
        elapsed = time.monotonic() - t
        print(f"  {what}: {total:,} in {elapsed:.1f}s ({total / elapsed:,.0f}/s)", flush=True)


# --- SQLite --------------------------------------------------------------------------------

# The same rows; times in the app's storage format ('YYYY-MM-DD HH:MM:SS.ffffff') from
# integer microseconds since the epoch, hex(randomblob()) for the varying values.
SQLITE_SERIES = "WITH RECURSIVE s(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM s WHERE i < :hi)"


def _sqlite_time(us: str) -> str:
    return (
        f"(strftime('%Y-%m-%d %H:%M:%S', ({us}) / 1000000, 'unixepoch') "
        f"|| printf('.%06d', ({us}) % 1000000))"
    )


SQLITE_T = ":t0us + ((i - 1) / :f) * :stepus"  # the event's time, i = delivery number
SQLITE_EVENTS = f"""
INSERT INTO events (id, type, data, merchant_id, occurred_at, received_at, body_sha256,
                    source, delivery_count)
{SQLITE_SERIES}
SELECT 'evt_hist_' || (:d0 + i), :etype,
       json_object('refund_id', 'rf_' || lower(hex(randomblob(8))),
                   'transaction_id', 'txn_' || lower(hex(randomblob(5))),
                   'merchant_id', 'm_' || (i % 997), 'amount', (i * 7919) % 100000,
                   'currency', 'EUR'),
       'm_' || (i % 997), {_sqlite_time(":t0us + (i - 1) * :stepus - 150000")},
       {_sqlite_time(":t0us + (i - 1) * :stepus")}, lower(hex(randomblob(32))), 'ingest', :f
FROM s
"""  # noqa: S608 (constants, no input)
SQLITE_DELIVERIES = f"""
INSERT INTO deliveries (id, event_id, endpoint_id, status, attempts_count, next_trigger,
                        last_status_code, last_attempt_at, created_at, completed_at,
                        event_type, merchant_id)
{SQLITE_SERIES}
SELECT :d0 + i, 'evt_hist_' || (:d0 + (i - 1) / :f + 1),
       :ep0 + (((i - 1) / :f + 1) * :f + (i - 1) % :f) % :m, 'succeeded', 1, 'automatic', 200,
       {_sqlite_time(SQLITE_T + " + 40000")}, {_sqlite_time(SQLITE_T + " + 5000")},
       {_sqlite_time(SQLITE_T + " + 260000")}, :etype, 'm_' || (((i - 1) / :f + 1) % 997)
FROM s
"""  # noqa: S608 (constants, no input)
SQLITE_ATTEMPTS = f"""
INSERT INTO attempts (id, delivery_id, endpoint_id, number, trigger, started_at, duration_ms,
                      request_url, request_headers, request_body, response_status,
                      response_headers, response_body, succeeded)
{SQLITE_SERIES}
SELECT :a0 + i, :d0 + i, ep, 1, 'automatic', {_sqlite_time(SQLITE_T + " + 40000")},
       20 + (i * 31) % 400, 'http://127.0.0.1:9/history/' || (ep - :ep0),
       json_object('content-type', 'application/json', 'user-agent', 'webhook-admin/1',
                   'webhook-id', 'evt_hist_' || (:d0 + e),
                   'webhook-timestamp', CAST((:t0us + (e - 1) * :stepus) / 1000000 AS TEXT),
                   'webhook-signature', 'v1,********'),
       '{{"id":"evt_hist_' || (:d0 + e) || '","type":"' || :etype || '","timestamp":"'
       || strftime('%Y-%m-%dT%H:%M:%SZ', (:t0us + (e - 1) * :stepus) / 1000000, 'unixepoch')
       || '","data":{{"refund_id":"rf_' || lower(hex(randomblob(8)))
       || '","transaction_id":"txn_' || lower(hex(randomblob(5)))
       || '","merchant_id":"m_' || (e % 997) || '","terminal_id":"term_' || (e % 4099)
       || '","amount":' || ((e * 7919) % 100000) || ',"currency":"EUR","card":{{"brand":"visa",'
       || '"last4":"' || printf('%04d', (e * 37) % 10000) || '","fingerprint":"'
       || lower(hex(randomblob(64))) || '"}},"reason":"customer_request",'
       || '"metadata":{{"order_ref":"' || lower(hex(randomblob(64)))
       || '","basket":"' || lower(hex(randomblob(64)))
       || '","session":"' || lower(hex(randomblob(64)))
       || '","trace":"' || lower(hex(randomblob(64))) || '"}}}}}}',
       200, '{{"content-type": "application/json"}}',
       '{{"received": true,"ref":"' || lower(hex(randomblob(12))) || '"}}', 1
FROM (SELECT i, (i - 1) / :f + 1 AS e, :ep0 + (((i - 1) / :f + 1) * :f + (i - 1) % :f) % :m AS ep
      FROM s)
"""  # noqa: S608 (constants, no input)


def _build_sqlite(
    engine: Engine, params: dict, start: datetime, span: timedelta, progress: bool
) -> None:
    n, f = params["n"], params["f"]
    events = math.ceil(n / f)
    epoch = datetime(1970, 1, 1)
    times = {
        "t0us": (start - epoch) // timedelta(microseconds=1),
        "stepus": (span // timedelta(microseconds=1)) // max(events, 1),
    }
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA synchronous = OFF")
        conn.exec_driver_sql("PRAGMA cache_size = -200000")  # 200 MB for the index builds
        indexes = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                "AND tbl_name IN ('events', 'deliveries', 'attempts')"
            )
        ).all()
        for name, _sql in indexes:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
        conn.commit()
        both = {**params, **times}
        # The events' own series: i is the event number there.
        _chunks(conn, SQLITE_EVENTS, events, both, "events", progress)
        _chunks(conn, SQLITE_DELIVERIES, n, both, "deliveries", progress)
        _chunks(conn, SQLITE_ATTEMPTS, n, both, "attempts", progress)
        t = time.monotonic()
        for _name, sql in indexes:
            conn.exec_driver_sql(sql)
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        if progress:
            print(f"  indexes and analyze: {time.monotonic() - t:.1f}s", flush=True)


# --- the marker ----------------------------------------------------------------------------


def write_marker(engine: Engine, history: History) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {MARKER}"))
        conn.execute(
            text(
                f"CREATE TABLE {MARKER} (rows BIGINT, fanout INTEGER, builder_version INTEGER, "
                "alembic_head VARCHAR(64), built_at TIMESTAMP, max_endpoint_id BIGINT, "
                "max_delivery_id BIGINT, max_attempt_id BIGINT, max_received_at TIMESTAMP, "
                "seconds FLOAT)"
            )
        )
        values = asdict(history)
        columns = ", ".join(values)
        binds = ", ".join(":" + c for c in values)
        conn.execute(text(f"INSERT INTO {MARKER} ({columns}) VALUES ({binds})"), values)  # noqa: S608


def read_marker(database_url: str) -> History | None:
    """The marker of the history in that database; None: none (or no such database)."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            sql = f"SELECT * FROM {MARKER}"  # noqa: S608 (our table)
            row = conn.execute(text(sql)).mappings().first()
    except Exception:  # no database, no table: no history
        return None
    finally:
        engine.dispose()
    if row is None:
        return None
    values = dict(row)
    for key in ("built_at", "max_received_at"):
        if isinstance(values[key], str):  # SQLite
            values[key] = datetime.fromisoformat(values[key])
    return History(**values)


def marker_matches(history: History | None, n: int) -> bool:
    return (
        history is not None
        and history.rows == n
        and history.fanout == FANOUT
        and history.builder_version == BUILDER_VERSION
    )


def upgraded(url: str, history: History) -> History:
    """A kept history built under older migrations, brought to the code's head by them (they
    are expand-only: an index on 10M rows takes minutes, a rebuild most of an hour)."""
    head = code_alembic_head()
    if history.alembic_head != head:
        print(f"history: migrating the kept database {history.alembic_head} -> {head}")
        procs.flask_cli(procs.app_environ(url, "redis://127.0.0.1:1/0"), "db", "upgrade")
        history = replace(history, alembic_head=head)
        engine = create_engine(url)
        try:
            write_marker(engine, history)
        finally:
            engine.dispose()
    return history


def retention_days_for(history: History) -> int:
    """WEBHOOK_RETENTION_DAYS that keeps a kept history in retention for a day's runs: the
    default (30) on the day of the build, one more per day it has aged since."""
    age = datetime.utcnow() - history.built_at
    return 30 + math.ceil(age / timedelta(days=1))


def ensure_history_pg(admin_url: str, n: int, name: str = PG_HISTORY_DB) -> tuple[str, History]:
    """The kept PostgreSQL history database with `n` rows: reused when its marker matches,
    else dropped, migrated, seeded and built (10M rows: minutes, paid once)."""
    base = admin_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    history = read_marker(url)
    if marker_matches(history, n):
        print(f"history: reusing {name} ({n:,} rows, built {history.built_at:%Y-%m-%d %H:%M})")
        return url, upgraded(url, history)
    url = procs.prepare_postgres(admin_url, name)
    return url, _migrate_and_build(url, n)


def ensure_history_sqlite(n: int, path: Path = SQLITE_HISTORY_FILE) -> tuple[str, History]:
    """The same for SQLite, in one kept file under var/bench/."""
    url = f"sqlite:///{path}"
    history = read_marker(url) if path.exists() else None
    if marker_matches(history, n):
        print(f"history: reusing {path.name} ({n:,} rows, built {history.built_at:%Y-%m-%d %H:%M})")
        return url, upgraded(url, history)
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return url, _migrate_and_build(url, n)


def _migrate_and_build(url: str, n: int) -> History:
    environ = procs.app_environ(url, "redis://127.0.0.1:1/0")
    procs.migrate_and_seed(environ)
    return build_history(url, n, environ=environ)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--url",
        help="build into this (migrated, seeded) database instead of the kept one "
        f"({PG_HISTORY_DB} / {SQLITE_HISTORY_FILE.name}, rebuilt when its marker differs)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild the kept one anyway")
    args = parser.parse_args(argv)
    if args.url:
        build_history(args.url, args.rows)
        return
    if args.db == "postgresql":
        from .run import PG_ADMIN_URL

        if args.force:
            procs.prepare_postgres(PG_ADMIN_URL, PG_HISTORY_DB)
        ensure_history_pg(PG_ADMIN_URL, args.rows)
    else:
        if args.force:
            SQLITE_HISTORY_FILE.unlink(missing_ok=True)
        ensure_history_sqlite(args.rows)


if __name__ == "__main__":
    main()
