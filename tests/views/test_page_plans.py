"""The pages' statements find their rows by an index, whatever history the tables hold
(issue 16): at 10M attempts a filter of the delivery monitor that walks the table, or an
endpoint page that reads all of the endpoint's deliveries to keep its last 24 hours, takes
seconds (bench/pages.py, bench/findings.md).

Each page is requested through the app with 3,000 rows of history that match none of its
filters (delivered, two days old: tests/delivery/test_hot_plans.py's add_history, aged); every
statement it sent to a history table is asked for its plan:
- PostgreSQL: EXPLAIN ANALYZE with enable_seqscan off (at 3,000 rows a whole table costs
  less than an index); no Seq Scan of a history table, and the rows its scans read and threw
  away (Rows Removed by Filter, times the loops) stay far below the history's size;
- SQLite: EXPLAIN QUERY PLAN; no SCAN of a history table by a statement with a WHERE, and no
  temporary B-tree to sort a keyset page by id (the newest 50 come from an index in order)
  unless the index searched a range (an hour, an event id prefix: those rows only).
Without statistics (a fresh install) and after ANALYZE.

Not covered (the filter joins events; see docs/decisions.md, issue 16): event type, category
and merchant filters."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from tests.delivery.test_hot_plans import GROWING, HISTORY, Statements, add_history
from webhook_admin.clock import utcnow
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, DeliveryStatus, Event

THROWN_AWAY = HISTORY // 10  # rows a plan may read and drop: a few, never the history


def add_old_history(endpoint_id: int, rows: int) -> None:
    """add_history's rows, made two days old: clear of the 24-hour windows and of their
    id floor's margin (a day old would fall in it in the last 10 minutes of an hour)."""
    add_history(endpoint_id, rows)
    two_days_ago = utcnow() - timedelta(days=2)
    db.session.execute(update(Delivery).values(created_at=two_days_ago, completed_at=two_days_ago))
    db.session.execute(update(Attempt).values(started_at=two_days_ago))
    db.session.commit()


def add_recent(endpoint_id: int) -> Delivery:
    """One failed delivery of a moment ago (a 503 that timed out), so pages have a row."""
    now = utcnow()
    event = Event(
        id="evt_recent_1",
        type="transaction.approved",
        data={"amount": 1},
        occurred_at=now,
        received_at=now,
        body_sha256="0" * 64,
    )
    delivery = Delivery(
        event=event,
        endpoint_id=endpoint_id,
        status=DeliveryStatus.FAILED,
        attempts_count=1,
        last_status_code=503,
        last_error_class="timeout",
        last_attempt_at=now,
        created_at=now,
    )
    db.session.add_all([event, delivery])
    db.session.commit()
    return delivery


def page_urls(endpoint_id: int, delivery_id: int) -> list[str]:
    hour = utcnow().strftime("%Y-%m-%dT%H")
    return [
        "/deliveries?status=failed",
        f"/deliveries?status=failed&cursor={delivery_id + 1}",
        "/deliveries?status=retrying",
        "/deliveries?status_class=5xx",
        "/deliveries?error_class=timeout",
        "/deliveries?since=1h",
        f"/deliveries?hour={hour}",
        "/deliveries?event_id=evt_recent",
        "/deliveries?status=failed&since=24h",
        f"/deliveries/feed?status=failed&after={delivery_id - 1}",
        f"/webhooks/{endpoint_id}",
        f"/webhooks/{endpoint_id}/stats",
        "/webhooks",
    ]


def thrown_away(statement: str, parameters) -> list[str]:
    """The plan's scans of history tables that read rows only to drop them, as
    "<node> on <table>: <rows>" (PostgreSQL), or its full scans and id sorts (SQLite)."""
    with db.engine.connect() as connection:
        cursor = connection.connection.cursor()
        if connection.dialect.name == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            lines = [row[3].strip() for row in cursor.fetchall()]
            cursor.close()
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
        # Tables of 3,000 rows are cheaper to read whole than by an index: ask for the plan the
        # database takes when it has an index for the statement (it reads the whole table
        # anyway when it has none: a Seq Scan, or an index walked end to end and filtered).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + statement, parameters)
        (plan,) = cursor.fetchone()
        cursor.close()
    plan = json.loads(plan) if isinstance(plan, str) else plan
    found = []

    def walk(node: dict) -> None:
        removed = node.get("Rows Removed by Filter", 0) * node.get("Actual Loops", 1)
        growing = node.get("Relation Name") in GROWING
        if growing and (removed > THROWN_AWAY or node["Node Type"] == "Seq Scan"):
            found.append(f"{node['Node Type']} on {node['Relation Name']}: {removed:.0f}")
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return found


def page_statements(viewer, urls: list[str]) -> dict[str, list[tuple[str, object]]]:
    """What each page sent to a history table."""
    sent = {}
    for url in urls:
        with Statements() as captured:
            response = viewer.get(url)
        assert response.status_code in (200, 204), (url, response.status_code)
        sent[url] = [
            (sql, params)
            for sql, params in captured.seen
            if any(re.search(rf"\b{table}\b", sql) for table in GROWING)
        ]
    return sent


@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_page_statements_never_read_the_history(app, viewer, add_endpoint, analyzed):
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    add_old_history(endpoint.id, HISTORY)
    recent = add_recent(endpoint.id)
    if analyzed:
        db.session.execute(text("ANALYZE"))
        db.session.commit()

    sent = page_statements(viewer, page_urls(endpoint.id, recent.id))

    assert all(sent.values()), {url: len(s) for url, s in sent.items()}
    plans = {
        f"{url} :: {' '.join(sql.split())[:50]}…{' '.join(sql.split())[-90:]}": thrown_away(
            sql, params
        )
        for url, statements in sent.items()
        for sql, params in statements
    }
    bad = {key: lines for key, lines in plans.items() if lines}
    assert not bad, "\n".join(f"{key}: {lines}" for key, lines in bad.items())


def test_the_pages_still_show_the_row_they_look_for(viewer, add_endpoint):
    """The same pages, by their content: the recent failed delivery is found by each filter
    (the history's delivered rows by none), and the endpoint page counts it in its 24 hours."""
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    add_old_history(endpoint.id, 50)
    recent = add_recent(endpoint.id)
    for url in page_urls(endpoint.id, recent.id)[:10]:
        if "cursor=" in url or "retrying" in url:
            continue
        html = viewer.get(url).get_data(as_text=True)
        assert f"delivery-{recent.id}" in html, url
        assert "evt_history_1" not in html, url
    stats = viewer.get(f"/webhooks/{endpoint.id}/stats").get_data(as_text=True)
    assert "0 delivered, 1 failed" in stats


def test_the_endpoint_figures_count_a_delivery_whose_id_is_older_than_its_time(
    viewer, add_endpoint
):
    """Ids follow creation time only closely (a process stamps created_at, then INSERTs):
    the 24-hour figures start from the id of the first delivery created up to
    ID_FLOOR_MARGIN before the window, so one stamped in the window's first minutes whose
    INSERT came first, under a smaller id than one stamped before it, still counts."""
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    first = (utcnow() - timedelta(hours=23)).replace(minute=0, second=0, microsecond=0)
    stamped = [  # in id order: before the window, then two in it, inserted out of time order
        (DeliveryStatus.SUCCEEDED, first - timedelta(minutes=5)),
        (DeliveryStatus.FAILED, first + timedelta(minutes=2)),
        (DeliveryStatus.SUCCEEDED, first + timedelta(minutes=1)),
    ]
    for n, (status, created_at) in enumerate(stamped):
        event = Event(
            id=f"evt_stamped_{n}",
            type="transaction.approved",
            data={},
            occurred_at=created_at,
            body_sha256="0" * 64,
        )
        db.session.add(event)
        db.session.add(
            Delivery(event=event, endpoint_id=endpoint.id, status=status, created_at=created_at)
        )
        db.session.flush()
    db.session.commit()

    stats = viewer.get(f"/webhooks/{endpoint.id}/stats").get_data(as_text=True)

    assert f"{first:%H}:00 UTC: 1 delivered, 1 failed" in stats
