"""A/B of the delivery hot path with and without some indexes on `deliveries`, in alternating
rounds of one run on one tree (the schema is what differs, so two trees cannot share a
database for it):

    BENCH_AB_DB_URL=postgresql://.../scratch PYTHONPATH=. .venv/bin/python -m bench.ab_indexes \
        [ROUNDS] [s1,s2] [index,index...]

"old" runs with the indexes dropped, "new" with them as the migrations made them. Without a
list, the five that migration 0008 added to `deliveries` for the pages (each claim and each
finish writes an entry in every index of the row; 0008 took them from 6 to 11).

BENCH_AB_WHOLE=1: "old" has the listed partial indexes whole instead of dropped (their
definitions without the WHERE): what migration 0013's partial indexes save."""

from __future__ import annotations

import os
import sys

from sqlalchemy import create_engine, inspect, text

from bench import scenarios
from bench.ab_trees import make_env, report, run_scenarios

PAGE_INDEXES = (
    "ix_deliveries_status_id",
    "ix_deliveries_created",
    "ix_deliveries_error_id",
    "ix_deliveries_status_class_id",
    "ix_deliveries_event_id_pattern",
)


def index_definitions(engine, names: tuple[str, ...]) -> dict[str, str]:
    """The CREATE INDEX statement of each named index, read from PostgreSQL."""
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT indexname, indexdef FROM pg_indexes WHERE indexname = ANY(:names)"),
            {"names": list(names)},
        ).all()
    found = dict(rows)
    missing = set(names) - set(found)
    if missing:
        raise SystemExit(f"no such index: {', '.join(sorted(missing))}")
    return found


def set_indexes(engine, definitions: dict[str, str], present: bool) -> None:
    with engine.begin() as conn:
        for name, definition in definitions.items():
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))  # the other variant's
            if present:
                conn.execute(text(definition))
    have = {i["name"] for i in inspect(engine).get_indexes("deliveries")}
    assert all((name in have) == present for name in definitions), have


def whole(definitions: dict[str, str]) -> dict[str, str]:
    """The same indexes without their WHERE (a partial index made whole)."""
    return {name: sql.split(" WHERE ", 1)[0] for name, sql in definitions.items()}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    only = set(sys.argv[2].split(",")) if len(sys.argv) > 2 else {"s1", "s2"}
    names = tuple(sys.argv[3].split(",")) if len(sys.argv) > 3 else PAGE_INDEXES
    env = make_env(scenarios.Plan.make(False))
    engine = create_engine(env.environ["DATABASE_URL"])
    definitions = index_definitions(engine, names)
    as_before = whole(definitions) if os.environ.get("BENCH_AB_WHOLE") == "1" else None
    print(f"indexes under test: {', '.join(definitions)}", flush=True)
    results: dict[str, dict[str, list[dict]]] = {"old": {}, "new": {}}
    try:
        for round_ in range(rounds):
            order = ["old", "new"] if round_ % 2 == 0 else ["new", "old"]
            for variant in order:
                if variant == "old" and as_before is not None:
                    set_indexes(engine, as_before, present=True)
                else:
                    set_indexes(engine, definitions, present=variant == "new")
                run_scenarios(env, only, results[variant], f"round {round_ + 1} {variant}")
    finally:
        set_indexes(engine, definitions, present=True)
        engine.dispose()
        env.web.stop()
        env.db.close()
        env.redis.stop()
        env.receivers.stop()
    if as_before is not None:
        print("old = the indexes whole, new = partial, as migrated")
    else:
        print("old = without the indexes, new = with them")
    report(results, only)


if __name__ == "__main__":
    main()
