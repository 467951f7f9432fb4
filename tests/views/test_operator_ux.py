"""Operator experience (#21): health badges and order, disable with a reason, replay of what
a disabled endpoint missed, the expired session, the delivery filters, the favicon."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from tests.views.conftest import Session
from webhook_admin.clock import utcnow
from webhook_admin.delivery.maintenance_jobs import replay
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry, Delivery, Event
from webhook_admin.queues import FRESH, MAINTENANCE, delivery_id_of, get_queue
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


def make_endpoint(url: str, description: str = "", **health):
    endpoint, _ = create_endpoint(
        EndpointInput(url, ["transaction.approved"], "Transactions", description=description), "t"
    )
    for name, value in health.items():
        setattr(endpoint, name, value)
    db.session.commit()
    return endpoint


def test_each_health_state_has_its_own_badge_and_failing_endpoints_sort_first(viewer):
    now = utcnow()
    make_endpoint("http://127.0.0.1:9/healthy", "Healthy one")
    make_endpoint("http://127.0.0.1:9/failing", failing_since=now - timedelta(minutes=12))
    make_endpoint("http://127.0.0.1:9/gone", enabled=False, disabled_reason="gone")
    make_endpoint("http://127.0.0.1:9/auto", enabled=False, disabled_reason="auto")
    make_endpoint(
        "http://127.0.0.1:9/manual", enabled=False, disabled_reason="manual", disabled_by="ops@x"
    )
    html = viewer.get("/webhooks").get_data(as_text=True)
    for badge in ("Healthy", "Failing for 12 min", "Disabled: 410", "Auto-disabled", "Disabled"):
        assert f">{badge}</span>" in html
    assert "by ops@x" in html
    table = html[html.index('id="endpoint-rows"') :]
    order = [table.index(f"127.0.0.1:9/{name}") for name in ("failing", "auto", "gone", "healthy")]
    assert order[0] < min(order[1:]) and max(order[1], order[2]) < order[3]
    assert "2 endpoints disabled by the system" in html and "1 after a 410 Gone" in html


def test_disable_is_confirmed_with_a_reason_and_says_new_events_wait(admin, endpoint):
    confirm = admin.get(f"/webhooks/{endpoint.id}/disable", htmx=True).get_data(as_text=True)
    assert "New events will not be queued" in confirm and 'name="note"' in confirm
    db.session.refresh(endpoint)
    assert endpoint.enabled  # the GET only asks
    html = admin.post(
        f"/webhooks/{endpoint.id}/disable", {"note": "receiver migration"}, htmx=True
    ).get_data(as_text=True)
    assert "receiver migration" in html and "by admin@example.com" in html
    db.session.refresh(endpoint)
    assert not endpoint.enabled and endpoint.disabled_note == "receiver migration"


def test_replay_counts_what_the_fanout_rules_missed_then_queues_it_in_the_background(
    admin, endpoint, post_event
):
    post_event("transaction.approved", event_id="evt_before")
    admin.post(f"/webhooks/{endpoint.id}/disable", htmx=True)
    for n in range(3):
        post_event("transaction.approved", event_id=f"evt_missed_{n}")
    post_event("transaction.declined", event_id="evt_other_type")  # not subscribed
    assert db.session.scalar(select(Delivery).where(Delivery.event_id == "evt_missed_0")) is None
    admin.post(f"/webhooks/{endpoint.id}/enable", htmx=True)

    db.session.refresh(endpoint)
    since = (utcnow() - timedelta(minutes=5)).replace(microsecond=0).isoformat()
    page = admin.get(f"/webhooks/{endpoint.id}/replay?since={since}").get_data(as_text=True)
    assert '<strong class="replay-count">3</strong>' in page
    assert get_queue(MAINTENANCE).count == 0
    response = admin.post(f"/webhooks/{endpoint.id}/replay", {"since": since}, htmx=True)
    assert response.status_code == 202
    assert get_queue(MAINTENANCE).count == 1
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "endpoint.replay"))
    assert entry.after["missed_count"] == 3 and entry.actor == "admin@example.com"

    fresh_before = set(get_queue(FRESH).job_ids)
    assert replay(endpoint.id, since, "admin@example.com") == 3
    created = db.session.scalars(
        select(Delivery.event_id).where(Delivery.event_id.like("evt_missed_%"))
    ).all()
    assert sorted(created) == ["evt_missed_0", "evt_missed_1", "evt_missed_2"]
    new_jobs = {delivery_id_of(j) for j in set(get_queue(FRESH).job_ids) - fresh_before}
    assert len(new_jobs) == 3
    assert db.session.get(Event, "evt_missed_0").delivery_count == 1
    assert replay(endpoint.id, since, "admin@example.com") == 0  # nothing twice


def test_replay_respects_the_merchant_filter(admin, post_event):
    endpoint = make_endpoint("http://127.0.0.1:9/m1")
    endpoint.merchant_id = "m-1"
    db.session.commit()
    since = (utcnow() - timedelta(minutes=1)).replace(microsecond=0).isoformat()
    admin.post(f"/webhooks/{endpoint.id}/disable", htmx=True)
    post_event("transaction.approved", event_id="evt_m1", merchant_id="m-1")
    post_event("transaction.approved", event_id="evt_m2", merchant_id="m-2")
    page = admin.get(f"/webhooks/{endpoint.id}/replay?since={since}").get_data(as_text=True)
    assert '<strong class="replay-count">1</strong>' in page


def test_an_expired_session_sends_an_htmx_action_to_login_and_back_to_its_page(app, endpoint):
    client = app.test_client()  # no session: as after it expired
    response = client.post(
        f"/webhooks/{endpoint.id}/test",
        headers={"HX-Request": "true", "HX-Current-URL": "http://localhost/webhooks?q=ERP"},
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login?next=/webhooks?q%3DERP"


def test_a_refused_action_answers_with_a_message_for_the_alert(admin, endpoint):
    admin.post(f"/webhooks/{endpoint.id}/disable", htmx=True)
    response = admin.post(f"/webhooks/{endpoint.id}/test", htmx=True)
    assert response.status_code == 409
    assert 'class="error-text"' in response.get_data(as_text=True)


def test_delivery_filters_by_http_class_error_merchant_and_event_id_prefix_with_a_count(
    viewer, endpoint, post_event
):
    for n, merchant in enumerate(("m-1", "m-1", "m-2")):
        post_event("transaction.approved", event_id=f"evt_f{n}", merchant_id=merchant)
    rows = {d.event_id: d for d in db.session.scalars(select(Delivery))}
    rows["evt_f0"].last_status_code = 503
    rows["evt_f1"].last_status_code = 200
    rows["evt_f2"].last_error_class = "timeout"
    db.session.commit()

    def matching(query: str) -> str:
        return viewer.get(f"/deliveries?{query}", htmx=True).get_data(as_text=True)

    assert "evt_f0" in (html := matching("status_class=5xx")) and "evt_f1" not in html
    assert "1 delivery matches" in html
    assert "evt_f2" in (html := matching("error_class=timeout")) and "evt_f0" not in html
    html = matching("merchant_id=m-1")
    assert "evt_f0" in html and "evt_f1" in html and "evt_f2" not in html
    assert "2 deliveries match" in html
    assert "3 deliveries match" in matching("event_id=evt_f")
    assert "0 deliveries match" in matching("event_id=evt%25")  # % is literal, not a pattern
    page = viewer.get("/deliveries").get_data(as_text=True)
    assert "Clear filters" in page and 'class="filter-grid"' in page


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"


def test_viewer_sees_the_replay_count_but_no_replay_button(viewer, endpoint):
    html = viewer.get(f"/webhooks/{endpoint.id}/replay").get_data(as_text=True)
    assert "replay-count" in html and "Replay 0" not in html
    assert Session  # the viewer's POST is in test_auth's 403 list


def test_the_webhook_form_shows_every_error_in_one_pass_without_adding_rows(admin):
    form = {"url": "ftp://not a url", "timeout_seconds": "abc", "header_name": ["X-Team", ""]}
    response = admin.post("/webhooks", form, htmx=True)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert 'id="url-error"' in html and 'id="timeout_seconds-error"' in html
    assert 'id="event_types-error"' in html
    form["header_name"] = ["X-Team", "", ""]  # as the re-shown form sends it back
    again = admin.post("/webhooks", form, htmx=True).get_data(as_text=True)
    assert html.count('name="header_name"') == again.count('name="header_name"') == 3


def test_catalog_forms_have_unique_ids(admin):
    html = admin.get("/catalog").get_data(as_text=True)
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert 'for="category-name"' in html and 'id="category-name"' in html


def test_users_page_offers_no_refused_action_on_your_own_row(admin, viewer):
    html = admin.get("/users").get_data(as_text=True)
    start = html.index("<td>admin@example.com</td>")
    own = html[start : html.index("</tr>", start)]
    assert "Disable user" not in own and "(you)" in own
    other = html[html.index("<td>viewer@example.com</td>") :]
    assert (
        "Disable user" in other and 'hx-confirm="Change the role of viewer@example.com?"' in other
    )


def test_rotation_takes_a_chosen_overlap_and_the_page_says_until_when(admin, endpoint):
    admin.post(f"/webhooks/{endpoint.id}/secret/rotate", {"overlap": "7d"}, htmx=True)
    db.session.refresh(endpoint)
    left = endpoint.previous_secret_expires_at - utcnow()
    assert timedelta(days=6, hours=23) < left <= timedelta(days=7)
    page = admin.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)
    until = endpoint.previous_secret_expires_at.strftime("%Y-%m-%d %H:%M:%S")
    assert f"Previous secret valid until {until} UTC" in page
    admin.post(f"/webhooks/{endpoint.id}/secret/rotate", {"overlap": "0h"}, htmx=True)
    db.session.refresh(endpoint)
    assert endpoint.previous_secret_encrypted is None  # revoked now
    assert "Previous secret valid until" not in admin.get(f"/webhooks/{endpoint.id}").get_data(
        as_text=True
    )
    bad = admin.post(f"/webhooks/{endpoint.id}/secret/rotate", {"overlap": "1y"}, htmx=True)
    assert bad.status_code == 400


def test_a_test_event_takes_a_subscribed_type_and_an_edited_payload(admin, endpoint):
    example = admin.get(
        f"/webhooks/{endpoint.id}/test/example?event_type=transaction.approved", htmx=True
    ).get_data(as_text=True)
    assert "txn_" in example  # the catalog's example for that type
    response = admin.post(
        f"/webhooks/{endpoint.id}/test",
        {"event_type": "transaction.approved", "data": '{"amount": 4200}'},
        htmx=True,
    )
    assert response.status_code == 200 and "transaction.approved" in response.get_data(as_text=True)
    event = db.session.scalar(select(Event).where(Event.source == "test"))
    assert event.type == "transaction.approved" and event.data == {"amount": 4200}


def test_a_test_event_refuses_an_unsubscribed_type_and_bad_json(admin, endpoint):
    other = {"event_type": "refund.created", "data": "{}"}
    assert admin.post(f"/webhooks/{endpoint.id}/test", other, htmx=True).status_code == 409
    bad = admin.post(f"/webhooks/{endpoint.id}/test", {"data": "{nope"}, htmx=True)
    assert bad.status_code == 422 and "not valid JSON" in bad.get_data(as_text=True)
    assert db.session.scalar(select(Event).where(Event.source == "test")) is None


def test_any_event_is_resent_to_any_endpoint_from_its_page(admin, endpoint, post_event):
    other = make_endpoint("http://127.0.0.1:9/other", "Not subscribed")
    other.event_types = []
    other.all_category_events = False
    db.session.commit()
    post_event("transaction.approved", event_id="evt_resend")
    page = admin.get("/events/evt_resend").get_data(as_text=True)
    assert "Resend this event to an endpoint" in page
    form = admin.get("/webhooks/resend?event_id=evt_resend").get_data(as_text=True)
    assert f'value="{other.id}"' in form
    fresh_before = set(get_queue(FRESH).job_ids)
    response = admin.post("/webhooks/resend", {"endpoint_id": other.id, "event_id": "evt_resend"})
    assert response.status_code == 303
    created = db.session.scalar(
        select(Delivery).where(Delivery.event_id == "evt_resend", Delivery.endpoint_id == other.id)
    )
    assert created is not None and created.next_trigger == "manual"
    assert delivery_id_of(next(iter(set(get_queue(FRESH).job_ids) - fresh_before))) == created.id
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "event.resend"))
    assert entry.after == {"event_id": "evt_resend", "delivery_id": created.id}
    # The same pair again is the delivery again, refused while it is still waiting to go.
    again = admin.post(
        "/webhooks/resend", {"endpoint_id": other.id, "event_id": "evt_resend"}, htmx=True
    )
    assert again.status_code == 409


def test_delivery_rows_show_the_last_attempts_duration(viewer, endpoint):
    from tests.views.test_deliveries import make_delivery

    delivery = make_delivery(endpoint)  # one attempt of 12 ms
    html = viewer.get("/deliveries").get_data(as_text=True)
    assert ">Duration</th>" in html and ">12 ms</td>" in html
    row = viewer.get(f"/deliveries/{delivery.id}/row", htmx=True).get_data(as_text=True)
    assert ">12 ms</td>" in row
