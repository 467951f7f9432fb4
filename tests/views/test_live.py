"""The live pages' polls: a cursor or a version, then 204 with no body when nothing changed."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import event

from tests.views.test_deliveries import make_delivery
from webhook_admin import clock
from webhook_admin.extensions import db
from webhook_admin.models import Delivery, Endpoint
from webhook_admin.services.endpoints import EndpointInput, create_endpoint
from webhook_admin.services.live_strip import strip_memo

FEED = re.compile(r'data-live-after="(\d+)"')
VERSION = re.compile(
    r'id="(?:endpoint-feed|live-strip|endpoint-stats)"[^>]*?data-live-version="([0-9a-f]+)"', re.S
)


@pytest.fixture(autouse=True)
def fresh_strip():
    strip_memo.clear()
    yield
    strip_memo.clear()


class Queries:
    """Counts the SQL statements one request runs for its answer (the cheap answer's cost).
    The session's user is left out: whether it is read again depends on whether an earlier
    request expired it in the test's shared session, not on the poll."""

    def __init__(self):
        self.count = 0
        self.statements: list[str] = []

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self.seen)
        return self

    def seen(self, conn, cursor, statement, *args):
        if re.search(r"\bFROM users\b", statement) and "JOIN" not in statement:
            return
        self.count += 1
        self.statements.append(statement)

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self.seen)


def settle():
    """Move past the window in which a cursor waits for rows still being committed."""
    clock.advance(5)


def test_feed_cursor_starts_at_the_newest_row_shown(viewer, endpoint):
    shown = make_delivery(endpoint, "succeeded")
    db.session.commit()
    html = viewer.get("/deliveries").get_data(as_text=True)
    assert FEED.search(html).group(1) == str(shown.id)


def test_feed_answers_204_with_its_cursor_when_nothing_is_new(viewer, endpoint):
    delivery_id = make_delivery(endpoint, "succeeded").id
    db.session.commit()
    with Queries() as queries:
        response = viewer.get(f"/deliveries/feed?after={delivery_id}", htmx=True)
    assert response.status_code == 204
    assert response.get_data() == b""
    assert response.headers["X-Live-Cursor"] == str(delivery_id)
    assert queries.count == 1  # the newest delivery id, by its primary key: no filtered query


def test_feed_sends_only_rows_after_the_cursor_that_match_the_filters(viewer, endpoint):
    old = make_delivery(endpoint, "succeeded", n=1)
    db.session.commit()
    other, _ = create_endpoint(
        EndpointInput("http://127.0.0.1:9/other", ["transaction.approved"]), "t"
    )
    db.session.commit()
    new_failed = make_delivery(endpoint, "failed", n=2)
    new_ok = make_delivery(endpoint, "succeeded", n=3)
    elsewhere = make_delivery(other, "failed", n=4)
    db.session.commit()

    response = viewer.get(
        f"/deliveries/feed?after={old.id}&status=failed&endpoint_id={endpoint.id}", htmx=True
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f'id="delivery-{new_failed.id}"' in html
    for absent in (old, new_ok, elsewhere):
        assert f'id="delivery-{absent.id}"' not in html
    # Created just now: the cursor waits at `after` in case a lower id is still committing.
    assert response.headers["X-Live-Cursor"] == str(old.id)

    settle()
    response = viewer.get(
        f"/deliveries/feed?after={old.id}&status=failed&endpoint_id={endpoint.id}", htmx=True
    )
    assert response.headers["X-Live-Cursor"] == str(elsewhere.id)
    follow = viewer.get(f"/deliveries/feed?after={elsewhere.id}&status=failed", htmx=True)
    assert follow.status_code == 204


def test_feed_leaves_out_rows_the_page_already_has(viewer, endpoint):
    first = make_delivery(endpoint, "succeeded", n=1).id
    second = make_delivery(endpoint, "succeeded", n=2).id
    db.session.commit()
    response = viewer.get(f"/deliveries/feed?after=0&have={first}", htmx=True)
    html = response.get_data(as_text=True)
    assert f'id="delivery-{second}"' in html and f'id="delivery-{first}"' not in html
    everything_shown = viewer.get(f"/deliveries/feed?after=0&have={first},{second}", htmx=True)
    assert everything_shown.status_code == 204
    assert everything_shown.headers["X-Live-Cursor"] == "0"  # still settling


def test_feed_while_waiting_answers_how_many_and_keeps_its_cursor(viewer, endpoint):
    old = make_delivery(endpoint, "succeeded", n=1).id
    db.session.commit()
    assert viewer.get(f"/deliveries/feed?after={old}&count=1", htmx=True).status_code == 204
    for n in range(3):
        make_delivery(endpoint, "failed" if n else "succeeded", n=10 + n)
    db.session.commit()
    settle()
    response = viewer.get(f"/deliveries/feed?after={old}&count=1", htmx=True)
    assert response.status_code == 200
    assert response.headers["X-Live-New"] == "3"
    assert response.headers["X-Live-Cursor"] == str(old)  # the rows are still to be shown
    assert "<tr" not in response.get_data(as_text=True)
    filtered = viewer.get(f"/deliveries/feed?after={old}&count=1&status=failed", htmx=True)
    assert filtered.headers["X-Live-New"] == "2"


def test_feed_while_waiting_does_not_count_rows_the_page_already_shows(viewer, endpoint):
    # Shown at the top a moment ago, so the cursor still waits behind them; then the operator
    # scrolled down and one more came. "1 new", not "3 new": the page lists what it has.
    old = make_delivery(endpoint, "succeeded", n=1).id
    shown = [make_delivery(endpoint, "failed", n=10 + n).id for n in range(2)]
    arrived = make_delivery(endpoint, "succeeded", n=20).id
    db.session.commit()
    have = ",".join(str(i) for i in shown)
    response = viewer.get(f"/deliveries/feed?after={old}&count=1&have={have}", htmx=True)
    assert response.headers["X-Live-New"] == "1"
    assert response.headers["X-Live-Cursor"] == str(old)  # the new row is still to be shown
    everything = f"{have},{arrived}"
    caught_up = viewer.get(f"/deliveries/feed?after={old}&count=1&have={everything}", htmx=True)
    assert caught_up.status_code == 204 and "X-Live-New" not in caught_up.headers


def test_feed_sends_watched_rows_only_when_they_changed(viewer, endpoint):
    row = make_delivery(endpoint, "in_flight")
    row_id, attempts = row.id, row.attempts_count
    db.session.commit()
    watch = f"watch={row_id}.in_flight.{attempts}"
    unchanged = viewer.get(f"/deliveries/feed?after={row_id}&{watch}", htmx=True)
    assert unchanged.status_code == 204
    delivery = db.session.get(Delivery, row_id)
    delivery.status = "succeeded"
    db.session.commit()
    changed = viewer.get(f"/deliveries/feed?after={row_id}&{watch}", htmx=True)
    html = changed.get_data(as_text=True)
    assert changed.status_code == 200
    assert f'id="delivery-{row_id}"' in html and "Succeeded" in html
    # Final now: no longer watched, and no poll of its own either.
    assert "data-live-watch" not in html and "hx-trigger" not in html


def test_feed_rows_in_flight_are_watched_not_polled_one_by_one(viewer, endpoint):
    make_delivery(endpoint, "pending")
    db.session.commit()
    html = viewer.get("/deliveries/feed?after=0", htmx=True).get_data(as_text=True)
    assert 'data-live-watch="pending.1"' in html
    assert "every 2s" not in html


def test_feed_newest_sends_the_first_page_again(viewer, endpoint):
    ids = [make_delivery(endpoint, "succeeded", n=n).id for n in range(55)]
    db.session.commit()
    response = viewer.get("/deliveries/feed?after=3&newest=1&show_endpoint=1", htmx=True)
    html = response.get_data(as_text=True)
    assert response.headers["X-Live-Reset"] == "1"
    assert response.headers["X-Live-Cursor"] == str(ids[-1])
    assert html.count('<tr id="delivery-') == 50
    assert 'id="load-more"' in html


def test_feed_rows_carry_the_endpoint_column_only_on_the_monitor(viewer, endpoint):
    make_delivery(endpoint, "succeeded")
    db.session.commit()
    monitor = viewer.get("/deliveries/feed?after=0&show_endpoint=1", htmx=True).get_data(
        as_text=True
    )
    endpoint_page = viewer.get(f"/deliveries/feed?after=0&endpoint_id={endpoint.id}", htmx=True)
    assert "endpoint-cell" in monitor
    assert "endpoint-cell" not in endpoint_page.get_data(as_text=True)


def test_feed_refuses_a_cursor_that_is_not_an_id(viewer):
    response = viewer.get("/deliveries/feed?after=-3", htmx=True)
    assert response.status_code == 400
    assert "after: a delivery id" in response.get_data(as_text=True)


def test_feed_without_a_cursor_starts_at_the_newest_delivery(viewer, endpoint):
    newest = make_delivery(endpoint, "succeeded").id
    db.session.commit()
    response = viewer.get("/deliveries/feed", htmx=True)
    assert response.status_code == 204
    assert response.headers["X-Live-Cursor"] == str(newest)


def test_feed_needs_a_login(client):
    response = client.get("/deliveries/feed?after=0")
    assert response.status_code in (302, 401)


def test_strip_counts_the_last_hour_and_answers_204_for_its_version(viewer, endpoint):
    for n, status in enumerate(["succeeded", "succeeded", "succeeded", "failed", "retrying"]):
        make_delivery(endpoint, status, n=n)
    db.session.commit()
    html = viewer.get("/deliveries").get_data(as_text=True)
    strip = html[
        html.index('id="live-strip"') : html.index("</section>", html.index('id="live-strip"'))
    ]
    figures = dict(re.findall(r"<dt>([^<]+)</dt><dd[^>]*>([^<]+)", strip))
    assert figures == {
        "Delivered": "3",
        "Failed": "1",
        "Retrying": "1",
        "Expired": "0",
        "Success rate": "75.0 %",
    }
    version = VERSION.search(html).group(1)
    with Queries() as queries:
        unchanged = viewer.get(f"/deliveries/strip?version={version}", htmx=True)
    assert unchanged.status_code == 204
    assert queries.count == 0  # the strip comes from the per-process memo

    make_delivery(endpoint, "failed", n=9)
    db.session.commit()
    strip_memo.clear()  # as the interval ending does
    changed = viewer.get(f"/deliveries/strip?version={version}", htmx=True)
    assert changed.status_code == 200
    assert '<dt>Failed</dt><dd class="fail">2</dd>' in changed.get_data(as_text=True)


def test_strip_leaves_out_deliveries_older_than_an_hour(viewer, endpoint):
    make_delivery(endpoint, "failed", n=1)
    db.session.commit()
    clock.advance(3700)
    make_delivery(endpoint, "succeeded", n=2)
    db.session.commit()
    html = viewer.get("/deliveries/strip", htmx=True).get_data(as_text=True)
    assert '<dt>Failed</dt><dd class="fail">0</dd>' in html
    assert '<dt>Delivered</dt><dd class="ok">1</dd>' in html


def test_webhooks_rows_answer_204_until_an_endpoint_changes(viewer, admin, endpoint):
    html = viewer.get("/webhooks").get_data(as_text=True)
    version = VERSION.search(html).group(1)
    with Queries() as queries:
        unchanged = viewer.get(f"/webhooks/live?version={version}", htmx=True)
    assert unchanged.status_code == 204
    assert queries.count == 1, queries.statements  # one aggregate over endpoints

    endpoint = db.session.get(Endpoint, endpoint.id)
    endpoint.failing_since = clock.utcnow()
    endpoint.consecutive_failures = 7
    db.session.commit()
    changed = viewer.get(f"/webhooks/live?version={version}", htmx=True)
    body = changed.get_data(as_text=True)
    assert changed.status_code == 200
    assert changed.headers["X-Live-Version"] != version
    assert "Failing right now (1)" in body
    assert "7 failures in a row" in body
    assert f'id="endpoint-{endpoint.id}"' in body


def test_webhooks_rows_poll_shows_an_endpoint_added_elsewhere(viewer, endpoint):
    version = VERSION.search(viewer.get("/webhooks").get_data(as_text=True)).group(1)
    added, _ = create_endpoint(
        EndpointInput("http://127.0.0.1:9/cli", ["transaction.approved"]), "cli"
    )
    db.session.commit()
    body = viewer.get(f"/webhooks/live?version={version}", htmx=True).get_data(as_text=True)
    assert f'id="endpoint-{added.id}"' in body and f'id="endpoint-{endpoint.id}"' in body


def test_webhooks_rows_poll_keeps_the_filters(viewer, endpoint):
    create_endpoint(EndpointInput("http://127.0.0.1:9/zzz", ["transaction.approved"]), "cli")
    db.session.commit()
    body = viewer.get("/webhooks/live?q=zzz", htmx=True).get_data(as_text=True)
    assert "127.0.0.1:9/zzz" in body and f'id="endpoint-{endpoint.id}"' not in body


def test_endpoint_figures_answer_204_until_a_delivery_arrives(viewer, endpoint):
    html = viewer.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)
    version = VERSION.search(html).group(1)
    db.session.expunge_all()  # as in a server's fresh request: nothing already loaded
    with Queries() as queries:
        unchanged = viewer.get(f"/webhooks/{endpoint.id}/stats?version={version}", htmx=True)
    assert unchanged.status_code == 204
    assert queries.count == 2, queries.statements  # the endpoint, its newest delivery id
    make_delivery(db.session.get(Endpoint, endpoint.id), "succeeded")
    db.session.commit()
    changed = viewer.get(f"/webhooks/{endpoint.id}/stats?version={version}", htmx=True)
    assert changed.status_code == 200
    assert "<strong>1</strong> delivered" in changed.get_data(as_text=True)


def test_endpoint_figures_stop_polling_once_the_endpoint_is_deleted(viewer, admin, endpoint):
    admin.post(f"/webhooks/{endpoint.id}/delete", htmx=True)
    response = viewer.get(f"/webhooks/{endpoint.id}/stats?version=x", htmx=True)
    assert response.status_code == 286
    assert "deleted" in response.get_data(as_text=True)
