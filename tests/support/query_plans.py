"""Reading what the app sent to the database, and the database's plans for it (the plan
tests of issue 16: hot paths, pages, retention, data protection)."""

from __future__ import annotations

import json
import re
import uuid

from psycopg import sql as psycopg_sql
from sqlalchemy import event

from webhook_admin.extensions import db

# The tables that grow with history: a statement that reads one whole gets slower every day.
GROWING = ("events", "deliveries", "attempts")


class Statements:
    """Every statement the engine sends while active, with its parameters."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc) -> None:
        event.remove(db.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if executemany:
            parameters = parameters[0]
        self.seen.append((statement, parameters))

    def touching_history(self) -> list[tuple[str, object]]:
        """The statements that name a growing table."""
        return [
            (sql, params)
            for sql, params in self.seen
            if any(re.search(rf"\b{table}\b", sql) for table in GROWING)
        ]


def sqlite_searches(statement: str, parameters) -> list[str]:
    """SQLite's EXPLAIN QUERY PLAN of a statement, one line per step."""
    with db.engine.connect() as connection:
        cursor = connection.connection.cursor()
        cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        lines = [row[3].strip() for row in cursor.fetchall()]
        cursor.close()
    return lines


def postgres_plan_nodes(statement: str, parameters) -> list[dict]:
    """Every node of PostgreSQL's EXPLAIN ANALYZE of a statement (run in a transaction that
    is rolled back). Sequential scans off: tables of 3,000 rows are cheaper to read whole
    than by an index, so ask for the plan the database takes when it has an index for the
    statement (it reads the whole table anyway when it has none: a Seq Scan, or an index
    walked end to end and filtered)."""
    with db.engine.connect() as connection:
        cursor = connection.connection.cursor()
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        (plan,) = cursor.fetchone()
        cursor.close()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    nodes, todo = [], [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


def scans_of_growing_tables(statement: str, parameters, prefer_indexes: bool = False) -> list[str]:
    """The plan lines that read a whole history table (EXPLAIN, without running it).
    `prefer_indexes`: on PostgreSQL, with sequential scans off (a small table read whole can
    be the cheaper plan; this asks whether an index serves the statement at all)."""
    with db.engine.connect() as connection:
        cursor = connection.connection.cursor()
        if prefer_indexes and connection.dialect.name == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
        if connection.dialect.name == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            lines = [row[3] for row in cursor.fetchall()]
            scan = re.compile(rf"^SCAN ({'|'.join(GROWING)})\b")
        else:
            cursor.execute("EXPLAIN " + statement, parameters)
            lines = [row[0] for row in cursor.fetchall()]
            scan = re.compile(rf"Seq Scan on ({'|'.join(GROWING)})\b")
        cursor.close()
    return [line.strip() for line in lines if scan.search(line.strip())]


def thrown_away(statement: str, parameters, most: int) -> list[str]:
    """The plan's scans of history tables that read more than `most` rows only to drop them,
    as "<node> on <table>: <rows>" (PostgreSQL), or its full scans and id sorts (SQLite)."""
    if db.engine.dialect.name == "sqlite":
        lines = sqlite_searches(statement, parameters)
        scan = re.compile(rf"^SCAN ({'|'.join(GROWING)})\b")
        where = re.search(r"\bWHERE\b", statement)
        found = [line for line in lines if where and scan.search(line)]
        # A range (an hour, an id prefix) is sorted by id: its rows only, a bounded set.
        ranged = re.compile(rf"^SEARCH ({'|'.join(GROWING)}) .*\(.*[<>]\?")
        if re.search(r"ORDER BY deliveries\.id", statement) and not any(
            ranged.search(line) for line in lines
        ):
            found += [line for line in lines if "TEMP B-TREE FOR ORDER BY" in line]
        return found
    found = []
    for node in postgres_plan_nodes(statement, parameters):
        removed = node.get("Rows Removed by Filter", 0) * node.get("Actual Loops", 1)
        growing = node.get("Relation Name") in GROWING
        if growing and (removed > most or node["Node Type"] == "Seq Scan"):
            found.append(f"{node['Node Type']} on {node['Relation Name']}: {removed:.0f}")
    return found


def postgres_generic_plan(statement: str, parameters: dict) -> list[str]:
    """PostgreSQL's generic plan of a statement: the one a prepared statement may keep after
    its first five executions (psycopg prepares a statement run five times on a connection),
    made without the parameters' values. PREPAREd under plan_cache_mode force_generic_plan,
    then EXPLAIN EXECUTE with the values."""
    names: list[str] = []

    def placeholder(match: re.Match) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    numbered = re.sub(r"%\((\w+)\)s", placeholder, statement).replace("%%", "%")
    name = f"generic_plan_{uuid.uuid4().hex}"  # a prepared statement outlives a rollback
    with db.engine.connect() as connection:
        cursor = connection.connection.cursor()
        try:
            cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            cursor.execute(f"PREPARE {name} AS {numbered}")
            # EXECUTE takes no bound parameters: the values go in as SQL literals.
            values = psycopg_sql.SQL(", ").join(psycopg_sql.Literal(parameters[n]) for n in names)
            arguments = psycopg_sql.SQL("({})").format(values) if names else psycopg_sql.SQL("")
            cursor.execute(psycopg_sql.SQL(f"EXPLAIN EXECUTE {name}") + arguments)
            return [row[0] for row in cursor.fetchall()]
        finally:
            connection.connection.rollback()
            cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [name])
            if cursor.fetchone():
                cursor.execute(f"DEALLOCATE {name}")
            cursor.close()
