"""Scenario 8 (issue 16): scenarios 1 and 2 on a database holding history, against an empty
one, and scenario 2 after one earlier run against a fresh database; in alternating rounds of
one run, on PostgreSQL and SQLite.

- History: bench/history.py's rows (PostgreSQL 10,000,000 deliveries, SQLite 1,000,000;
  --quick: 1,000,000 and 200,000), in a kept database rebuilt only when its marker differs.
  Between runs only the scenario's own rows go (HistoryDatabase.reset: by id and time above
  the history's bounds, on the primary keys and ix_events_received).
- Empty: PostgreSQL the bench's own database (BENCH_DB_NAME), SQLite a new file; reset as
  every scenario does.
- After one earlier run: bench/after_run.py's fresh and after runs (its functions), on both.

Run by `python -m bench.run --only 8`; the rows are in bench/report.py (history_rows)."""

from __future__ import annotations

from pathlib import Path

import redis
from sqlalchemy import DateTime, bindparam, text

from . import after_run, history, procs, scenarios
from .load import KEEP_TABLES, Database
from .procs import Gunicorn, app_environ, migrate_and_seed

PG_ROWS = {False: 10_000_000, True: 1_000_000}  # by --quick
SQLITE_ROWS = {False: 1_000_000, True: 200_000}
SQLITE_EMPTY_FILE = procs.ROOT / "var" / "bench" / "bench_empty_sqlite.db"
# The tables the history fills: their scenario rows go by bounds; every other one is emptied.
BOUNDED = {"attempts", "deliveries", "events", "endpoint_event_types", "endpoints"}


class HistoryDatabase(Database):
    """The bench's view of a database with history: reset() keeps the history, the counts
    count the scenario's rows only (a count over 10M rows every 50 ms would be the load)."""

    def __init__(self, environ: dict[str, str], bounds: history.History):
        super().__init__(environ)
        self.bounds = bounds

    def reset(self) -> None:
        from webhook_admin.extensions import db

        b = self.bounds
        for sql, bound in (
            ("DELETE FROM attempts WHERE id > :v", b.max_attempt_id),
            ("DELETE FROM deliveries WHERE id > :v", b.max_delivery_id),
            # A DateTime bind: SQLite compares the app's text format, PostgreSQL a timestamp.
            ("DELETE FROM events WHERE received_at > :t", b.max_received_at),
            ("DELETE FROM endpoint_event_types WHERE endpoint_id > :v", b.max_endpoint_id),
            ("DELETE FROM endpoints WHERE id > :v", b.max_endpoint_id),
        ):
            statement = (
                text(sql).bindparams(bindparam("t", type_=DateTime)) if ":t" in sql else text(sql)
            )
            db.session.execute(statement, {"t" if ":t" in sql else "v": bound})
        for table in reversed(db.metadata.sorted_tables):
            if table.name not in KEEP_TABLES | BOUNDED:
                db.session.execute(text(f"DELETE FROM {table.name}"))  # noqa: S608 (ours)
        db.session.commit()

    def succeeded(self) -> int:
        return self.scalar(
            "SELECT count(*) FROM deliveries WHERE id > :v AND status = 'succeeded'",
            v=self.bounds.max_delivery_id,
        )

    def deliveries(self) -> int:
        return self.scalar(
            "SELECT count(*) FROM deliveries WHERE id > :v", v=self.bounds.max_delivery_id
        )


class SqliteEnv(scenarios.Env):
    """An Env on SQLite, where `worker.py` runs one process (bench/after_run.py)."""

    def start_workers(self, processes: int | None = None, **extra: str) -> list[procs.Child]:
        children = procs.start_workers({**self.environ, **extra}, processes)
        try:
            procs.wait_for(lambda: self.rq_workers_registered() >= 1, 60, 0.05, "RQ worker up")
        except Exception:
            procs.stop_all(children)
            raise
        return children


def history_env(base: scenarios.Env, url: str, bounds: history.History, sqlite: bool):
    """An Env like `base` (same receivers, Redis, plan) on the history database."""
    environ = app_environ(
        url, base.redis.url(0), WEBHOOK_RETENTION_DAYS=str(history.retention_days_for(bounds))
    )
    migrate_and_seed(environ)  # a no-op on a kept database at the head
    web = Gunicorn(environ, name="gunicorn-history")  # first: if it fails, nothing to close
    db = HistoryDatabase(environ, bounds)
    kind = SqliteEnv if sqlite else scenarios.Env
    return kind(base.plan, base.receivers, base.redis, environ, db, web)


def sqlite_empty_env(base: scenarios.Env) -> SqliteEnv:
    path = SQLITE_EMPTY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    environ = app_environ(f"sqlite:///{path}", base.redis.url(0))
    migrate_and_seed(environ)
    web = Gunicorn(environ, name="gunicorn-empty-sqlite")
    db = Database(environ)
    return SqliteEnv(base.plan, base.receivers, base.redis, environ, db, web)


def close_env(env: scenarios.Env) -> None:
    env.web.stop()
    env.db.close()


def in_own_context(env: scenarios.Env, scenario, *args) -> dict:
    """Run a scenario with `env`'s own app context on top: bench.load.Database works through
    `db.session`, which is the top context's, and two databases are open at once here (the
    empty one's reset must never run on the history, nor the other way round)."""
    with env.db.app.app_context():
        return scenario(env, *args)


def s1(env: scenarios.Env) -> dict:
    return in_own_context(env, scenarios.s1_ours)


def s2(env: scenarios.Env) -> dict:
    return in_own_context(env, scenarios.s23_ours, 0)


def history_rounds(runner, prefix: str, hist: scenarios.Env, empty: scenarios.Env) -> None:
    """Scenarios 1 and 2 on both, in alternating order round after round (`runner` is
    bench.run.Runner: it records `{prefix}_s1_history` etc. and keeps going past errors)."""
    items = [
        (f"{prefix}_s1_history", lambda _e: s1(hist)),
        (f"{prefix}_s1_empty", lambda _e: s1(empty)),
        (f"{prefix}_s2_history", lambda _e: s2(hist)),
        (f"{prefix}_s2_empty", lambda _e: s2(empty)),
    ]
    for round_ in range(runner.env.plan.runs):
        if round_ % 2:  # history first, then empty first: neither always runs second
            items = [items[1], items[0], items[3], items[2]]
        runner.rounds(items, runs=1)
        if round_ % 2:
            items = [items[1], items[0], items[3], items[2]]


def after_run_rounds(runner, prefix: str, backend: str) -> None:
    """Scenario 2 fresh and after one earlier run (bench/after_run.py), alternating."""
    env = runner.env
    for round_ in range(env.plan.runs):
        order = ("fresh", "after") if round_ % 2 == 0 else ("after", "fresh")
        runner.rounds(
            [
                (
                    f"{prefix}_s2_{kind}",
                    lambda _e, kind=kind: {
                        "rate": after_run.one(
                            kind, procs.ROOT, env.receivers, env.redis, env.plan, backend
                        )
                    },
                )
                for kind in order
            ],
            runs=1,
        )


def run(runner, pg_admin_url: str) -> None:
    """All of scenario 8 (bench.run calls it for `--only 8`)."""
    run_postgres(runner, pg_admin_url)
    run_sqlite(runner)
    redis.Redis.from_url(runner.env.redis.url(0)).flushdb()


def kept_name(quick: bool) -> str:
    """--quick keeps its smaller history apart: it must not replace the full one."""
    return "_quick" if quick else ""


def run_postgres(runner, pg_admin_url: str) -> None:
    """The kept history database against the bench's own (empty) one; then after/fresh."""
    base = runner.env
    quick = base.plan.quick
    name = history.PG_HISTORY_DB + kept_name(quick)
    url, bounds = history.ensure_history_pg(pg_admin_url, PG_ROWS[quick], name)
    build = runner.raw.setdefault("s8_build", [{}])[-1]
    build.update(pg_rows=bounds.rows, pg_build_s=bounds.seconds)
    hist = history_env(base, url, bounds, sqlite=False)
    try:
        history_rounds(runner, "s8_pg", hist, base)
    finally:
        close_env(hist)
    after_run_rounds(runner, "s8_pg", "postgresql")


def run_sqlite(runner) -> None:
    """The kept history file against a new file; then after/fresh."""
    base = runner.env
    quick = base.plan.quick
    path = history.SQLITE_HISTORY_FILE
    path = path.with_name(path.stem + kept_name(quick) + path.suffix)
    url, bounds = history.ensure_history_sqlite(SQLITE_ROWS[quick], path)
    build = runner.raw.setdefault("s8_build", [{}])[-1]
    build.update(sqlite_rows=bounds.rows, sqlite_build_s=bounds.seconds)
    hist = history_env(base, url, bounds, sqlite=True)
    try:
        empty = sqlite_empty_env(base)
        try:
            history_rounds(runner, "s8_sqlite", hist, empty)
        finally:
            close_env(empty)  # the reverse of opening: each pops its own app context
    finally:
        close_env(hist)
    after_run_rounds(runner, "s8_sqlite", "sqlite")
