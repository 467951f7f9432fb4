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

The merchant, event type and category filters are covered on the delivery's own copies of its
event's columns (migration 0011); before every delivery has them they join events, a path
tests/services/test_delivery_event_columns.py checks by its answers."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import insert, text, update

from tests.delivery.test_hot_plans import HISTORY, add_history, insert_events
from tests.support.query_plans import (
    GROWING,
    Statements,
    postgres_generic_plan,
    postgres_plan_nodes,
    sqlite_searches,
    thrown_away,
)
from webhook_admin.clock import utcnow
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, DeliveryStatus, Event
from webhook_admin.services.queries import DeliveryFilters

# The recent row's event: of a type, category and merchant no history row has.
RECENT_TYPE, RECENT_CATEGORY, RECENT_MERCHANT = "refund.failed", "Refunds", "m_recent"
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
        type=RECENT_TYPE,
        merchant_id=RECENT_MERCHANT,
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
        f"/deliveries?merchant_id={RECENT_MERCHANT}",
        f"/deliveries?event_type={RECENT_TYPE}",
        f"/deliveries?category={RECENT_CATEGORY}",
        f"/deliveries?category={RECENT_CATEGORY}&status=failed",
        f"/deliveries/feed?status=failed&after={delivery_id - 1}",
        f"/webhooks/{endpoint_id}",
        f"/webhooks/{endpoint_id}/stats",
        "/webhooks",
    ]


def page_statements(viewer, urls: list[str]) -> dict[str, list[tuple[str, object]]]:
    """What each page sent to a history table."""
    sent = {}
    for url in urls:
        with Statements() as captured:
            response = viewer.get(url)
        assert response.status_code in (200, 204), (url, response.status_code)
        sent[url] = captured.touching_history()
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
            sql, params, THROWN_AWAY
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
    for url in page_urls(endpoint.id, recent.id)[:14]:
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


def add_rows(endpoint_id: int, rows: int, prefix: str, status: str, created_at) -> None:
    """`rows` deliveries of `endpoint_id` (with their events), all `status`, created then."""
    insert_events(prefix, rows, created_at)
    db.session.execute(
        insert(Delivery.__table__),
        [
            {
                "event_id": f"evt_{prefix}_{i}",
                "event_type": "transaction.approved",
                "endpoint_id": endpoint_id,
                "status": status,
                "attempts_count": 1,
                "next_trigger": "automatic",
                "created_at": created_at,
                "last_status_code": 200 if status == DeliveryStatus.SUCCEEDED else 500,
            }
            for i in range(rows)
        ],
    )
    db.session.commit()


def bitmaps_read(statement: str, parameters) -> list[str]:
    """PostgreSQL: the bitmap index scans of the plan that returned more than a few entries
    (a BitmapAnd of two indexes, each reading one whole half of the history, removes no row
    by filter but reads them all)."""
    return [
        f"Bitmap Index Scan on {node['Index Name']}: {rows:.0f}"
        for node in postgres_plan_nodes(statement, parameters)
        if node["Node Type"] == "Bitmap Index Scan"
        and (rows := node.get("Actual Rows", 0) * node.get("Actual Loops", 1)) > THROWN_AWAY
    ]


@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_one_endpoints_status_reads_neither_its_other_statuses_nor_others_failures(
    app, viewer, add_endpoint, analyzed
):
    """?status=failed&endpoint_id=N: a busy endpoint's delivered history and another
    endpoint's failures. By status alone (ix_deliveries_status_id) it read the others'
    failures, by endpoint alone (ix_deliveries_endpoint_id) its delivered rows: 0.8-0.9 s at
    10M for a busy endpoint without failures. ix_deliveries_endpoint_status_id (0010) finds
    them by both."""
    busy = add_endpoint("http://127.0.0.1:9/hook")
    other = add_endpoint("http://127.0.0.1:9/other")
    two_days_ago = utcnow() - timedelta(days=2)
    # The busy endpoint's history is three times the other's failures. Without statistics,
    # at 1,500 rows each, PostgreSQL costed ix_deliveries_status_id (then a filter) exactly
    # as the composite index (8.29 both) and the tie went either way between full runs; at
    # 4,500 the status path costs 11.47 against 8.29. Analyzed, this shape needs the MCV
    # statistics on (endpoint_id, status) of migration 0012: from the columns' statistics
    # alone the planner expected thousands of the busy endpoint's failures and counted them
    # through the status index (1,501 rows read).
    add_rows(busy.id, 3 * HISTORY // 2, "busy", DeliveryStatus.SUCCEEDED, two_days_ago)
    add_rows(other.id, HISTORY // 2, "other", DeliveryStatus.FAILED, two_days_ago)
    recent = add_recent(busy.id)
    if analyzed:
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    urls = [
        f"/deliveries?status=failed&endpoint_id={busy.id}",
        f"/deliveries/feed?status=failed&endpoint_id={busy.id}&after={recent.id - 1}",
        f"/webhooks/{busy.id}?status=failed",
    ]

    sent = page_statements(viewer, urls)

    postgres = db.engine.dialect.name == "postgresql"
    bad = {}
    for url, statements in sent.items():
        for sql, params in statements:
            where = r"WHERE deliveries\.status = \S+ AND deliveries\.endpoint_id = "
            if not re.search(where, " ".join(sql.split())):
                continue
            if postgres:
                lines = thrown_away(sql, params, THROWN_AWAY) + bitmaps_read(sql, params)
            else:
                plan = sqlite_searches(sql, params)
                lines = [] if any("(endpoint_id=? AND status=?" in p for p in plan) else plan
            if lines:
                bad[f"{url} :: {' '.join(sql.split())[-120:]}"] = lines
    assert all(sent.values())
    assert not bad, "\n".join(f"{key}: {lines}" for key, lines in bad.items())
    html = viewer.get(urls[0]).get_data(as_text=True)
    assert f"delivery-{recent.id}" in html and "evt_other_" not in html


@pytest.mark.parametrize("analyzed", [False, True], ids=["no-statistics", "analyzed"])
def test_an_hour_in_the_middle_of_the_history_is_an_id_range(app, viewer, add_endpoint, analyzed):
    """The chart's ?hour= of three days ago, with a newer history above it: the newest-first
    walk by id (the plan PostgreSQL took at 10M, 2.8 s: it read every newer delivery down to
    the hour) must start at the hour's last ids. ix_deliveries_created is dropped for the
    test so that the walk by id is the only ordered plan on both databases; the id floor and
    ceiling probes that need it are left out of the check (tested with it above)."""
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    three_days_ago = utcnow() - timedelta(days=3)
    add_rows(endpoint.id, 1, "hour", DeliveryStatus.FAILED, three_days_ago)
    add_rows(endpoint.id, HISTORY, "newer", DeliveryStatus.SUCCEEDED, utcnow() - timedelta(days=1))
    if analyzed:
        db.session.execute(text("ANALYZE"))
        db.session.commit()
    url = f"/deliveries?hour={three_days_ago:%Y-%m-%dT%H}"
    html = viewer.get(url).get_data(as_text=True)
    assert "evt_hour_0" in html and "evt_newer_" not in html

    db.session.execute(text("DROP INDEX ix_deliveries_created"))
    db.session.commit()
    try:
        sent = page_statements(viewer, [url])
        checked = [
            (sql, params)
            for sql, params in sent[url]
            if "ORDER BY deliveries.created_at" not in sql and "deliveries.created_at >=" in sql
        ]
        plans = {
            " ".join(sql.split())[-120:]: thrown_away(sql, params, THROWN_AWAY)
            for sql, params in checked
        }
    finally:
        db.session.rollback()
        db.session.execute(text("CREATE INDEX ix_deliveries_created ON deliveries (created_at)"))
        db.session.commit()
    assert len(checked) >= 2, sent  # the page and its count
    assert not {key: lines for key, lines in plans.items() if lines}, plans


def count_statements(viewer, urls: list[str]) -> dict[str, list[tuple[str, object]]]:
    return {
        url: [(sql, params) for sql, params in sent if sql.lstrip().startswith("SELECT count(*)")]
        for url, sent in page_statements(viewer, urls).items()
    }


def read_from_the_table(statement: str, parameters) -> list[str]:
    """The plan's reads of deliveries rows themselves, not of an index alone: PostgreSQL's
    scans of deliveries other than an Index Only Scan (and bitmaps of more than a few
    entries); SQLite's lines on deliveries that are not a covering index or the rowid."""
    if db.engine.dialect.name == "sqlite":
        return [
            line
            for line in sqlite_searches(statement, parameters)
            if re.match(r"(SCAN|SEARCH) deliveries\b", line)
            and "COVERING INDEX" not in line
            and "INTEGER PRIMARY KEY" not in line
        ]
    return [
        f"{node['Node Type']} on {node['Relation Name']}"
        for node in postgres_plan_nodes(statement, parameters)
        if node.get("Relation Name") in GROWING and node["Node Type"] != "Index Only Scan"
    ] + bitmaps_read(statement, parameters)


def vacuum_analyze() -> None:
    """PostgreSQL: the visibility map too (an index-only scan is planned only for pages known
    all-visible; a 30-day history has been vacuumed); SQLite: ANALYZE."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE) deliveries"))
            conn.execute(text("VACUUM (ANALYZE) attempts"))
    else:
        db.session.execute(text("ANALYZE"))
        db.session.commit()


def test_bounded_counts_read_an_index_alone(app, viewer, add_endpoint, monkeypatch):
    """The bounded count ("More than 10,000") of an indexed filter reads cap + 1 index entries
    and no row: it selects the ids only (it selected every column, so each of the 10,001 rows
    was fetched from the table; the answer class at 10M: 150-290 ms), and a time range counts
    the ids above its ceiling without a created_at test (PostgreSQL read `created_at >= since
    AND id >= floor` as independent, expected a few hundred rows and ANDed two bitmaps of the
    whole range: 333,000 entries each for 24 hours at 10M). The cap is 100 here, so that the
    300 matching rows pass it."""
    from webhook_admin.services import queries

    monkeypatch.setattr(queries, "COUNT_CAP", 100)
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    old, recent = HISTORY * 9 // 10, HISTORY // 10  # a filter matches a tenth, past the cap
    add_rows(endpoint.id, old, "old", DeliveryStatus.SUCCEEDED, utcnow() - timedelta(days=2))
    add_rows(endpoint.id, recent, "recent", DeliveryStatus.FAILED, utcnow() - timedelta(hours=1))
    db.session.execute(
        update(Delivery).where(Delivery.status == "failed").values(last_error_class="timeout")
    )
    db.session.commit()
    vacuum_analyze()
    urls = [
        "/deliveries?status_class=5xx",
        "/deliveries?status=failed",
        "/deliveries?error_class=timeout",
        "/deliveries?since=24h",
        "/deliveries?since=7d",
        "/deliveries?status=failed&since=24h",
    ]

    counts = count_statements(viewer, urls)
    sqlite = db.engine.dialect.name == "sqlite"

    assert all(counts.values()), counts
    bad = {
        f"{url} :: {' '.join(sql.split())[-110:]}": lines
        for url, statements in counts.items()
        for sql, params in statements
        if (lines := read_from_the_table(sql, params))
        # SQLite does not answer from its index on the expression alone (PostgreSQL does,
        # with the column INCLUDEd: migration 0010); there the count reads 101 rows.
        and not (sqlite and "status_class" in url)
    }
    assert not bad, "\n".join(f"{key}: {lines}" for key, lines in bad.items())
    for filters in (DeliveryFilters(since="24h"), DeliveryFilters(status="failed", since="7d")):
        assert queries.count_deliveries(filters) == 101  # the cap + 1: "More than"
    assert queries.count_deliveries(DeliveryFilters(since="1h")) == 0


def test_the_endpoint_figures_read_the_endpoints_day_by_index(app, viewer, add_endpoint):
    """The endpoint page and its figures poll: the 24-hour chart (deliveries per hour and
    outcome), the response times and the success rate. PostgreSQL reads the endpoint's 24
    hours from indexes alone (0010's INCLUDE columns): at 10M each view fetched 3,300
    delivery rows and 3,300 attempts of ~1 KB from the heap twice (0.39 s p95). SQLite has no
    INCLUDE (and its 24 hours of one endpoint cost it far less, bench/findings.md): there each
    read is bounded by the day (an index of the endpoint with a bound, or the id range from
    the day's floor), never a scan or all of the endpoint's history."""
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    add_history(endpoint.id, HISTORY)
    # Two hours old: inside the chart's 24 hourly bars at any time of day (add_history's
    # "a day old" is always just before the first bar, so the chart found nothing and the
    # planner, rightly, took the created_at index: a test that passed or failed by the clock).
    # Three in four rows another endpoint's, as on a deployment with more than one: then the
    # endpoint's own index is the narrower read, as at 10M (one endpoint in 100).
    other = add_endpoint("http://127.0.0.1:9/other").id
    two_hours_ago = utcnow() - timedelta(hours=2)
    db.session.execute(
        update(Delivery).values(created_at=two_hours_ago, completed_at=two_hours_ago)
    )
    db.session.execute(update(Attempt).values(started_at=two_hours_ago))
    db.session.execute(update(Delivery).where(Delivery.id % 4 != 0).values(endpoint_id=other))
    db.session.execute(
        update(Attempt).where(Attempt.delivery_id % 4 != 0).values(endpoint_id=other)
    )
    db.session.commit()
    vacuum_analyze()
    urls = [f"/webhooks/{endpoint.id}", f"/webhooks/{endpoint.id}/stats"]

    sent = page_statements(viewer, urls)

    figures = [
        (url, sql, params)
        for url, statements in sent.items()
        for sql, params in statements
        if re.search(r"WHERE (deliveries|attempts)\.endpoint_id", sql)
        and ("GROUP BY" in sql or "attempts.duration_ms" in sql)
    ]
    assert len(figures) >= 4, sent  # per page: the chart, the durations, the success rate
    if db.engine.dialect.name == "sqlite":
        # The endpoint's index with a bound of the day, or the id range from the day's floor.
        by_endpoint_and_day = re.compile(
            r"SEARCH (deliveries|attempts) USING (COVERING )?INDEX ix_\w+ "
            r"\(endpoint_id=\? AND (status=\? AND id>\?|id>\?|started_at>\?)\)"
            r"|SEARCH deliveries USING INTEGER PRIMARY KEY \(rowid>\?\)"
        )
        plans = {
            f"{url} :: {' '.join(sql.split())[:110]}": sqlite_searches(sql, params)
            for url, sql, params in figures
        }
        bad = {
            key: lines
            for key, lines in plans.items()
            if any(
                re.match(r"(SCAN|SEARCH) (deliveries|attempts)\b", line)
                and not by_endpoint_and_day.match(line)
                for line in lines
            )
        }
        assert not bad, "\n".join(f"{key}: {lines}" for key, lines in bad.items())
        return
    bad = {
        f"{url} :: {' '.join(sql.split())[:110]}": lines
        for url, sql, params in figures
        if (lines := read_from_the_table(sql, params))
    }
    assert not bad, "\n".join(f"{key}: {lines}" for key, lines in bad.items())


PARTIAL_INDEX_FILTERS = {
    "/deliveries?status_class=5xx": "ix_deliveries_status_class_id",
    "/deliveries?error_class=timeout": "ix_deliveries_error_id",
}


@pytest.mark.parametrize("url", list(PARTIAL_INDEX_FILTERS))
def test_the_error_and_answer_filters_use_their_partial_index_in_a_generic_plan(
    app, viewer, add_endpoint, url
):
    """On PostgreSQL these two indexes hold only the deliveries with an error or an answer
    (migration 0013: WHERE ... IS NOT NULL). The filter's `=` on the column implies that for
    any value (PostgreSQL proves it for a strict operator), so even a prepared statement's
    generic plan, made without the parameter's value, reads the partial index. On SQLite
    the indexes are whole."""
    endpoint = add_endpoint("http://127.0.0.1:9/hook")
    add_old_history(endpoint.id, HISTORY)
    add_recent(endpoint.id)
    (statements,) = page_statements(viewer, [url]).values()
    index = PARTIAL_INDEX_FILTERS[url]
    if db.engine.dialect.name == "sqlite":
        plans = [sqlite_searches(sql, params) for sql, params in statements]
    else:
        plans = [postgres_generic_plan(sql, params) for sql, params in statements]
    # The newest 50 and the bounded count both read it.
    assert sum(any(index in line for line in plan) for plan in plans) >= 2, plans
