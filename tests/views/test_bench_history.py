"""The benchmarks' history builder (bench/history.py, issue 16) makes rows the app takes for
its own: the monitor lists them, retention keeps them, no new event fans out to their
endpoints, and the counts and bounds in the marker are right."""

from __future__ import annotations

import json

from sqlalchemy import func, select, text

from bench.history import FANOUT, HISTORY_ENDPOINTS, build_history, read_marker
from bench.history_scenarios import HistoryDatabase
from webhook_admin.extensions import db
from webhook_admin.models import Attempt, Delivery, Event
from webhook_admin.services.retention import purge_batch, purge_orphan_events, retention_cutoff

ROWS = 2000


def test_built_history_is_valid_for_the_app(viewer, endpoint, environ, post_event):
    db.session.commit()
    db.session.close()
    history = build_history(environ["DATABASE_URL"], ROWS, environ=environ, progress=False)
    try:
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == ROWS
        assert db.session.scalar(select(func.count()).select_from(Attempt)) == ROWS
        events = db.session.scalar(select(func.count()).select_from(Event))
        assert events == -(-ROWS // FANOUT)
        assert history.max_delivery_id == db.session.scalar(select(func.max(Delivery.id)))
        assert read_marker(environ["DATABASE_URL"]).rows == ROWS

        # Every delivery succeeded, one attempt each, a ~1 KB JSON body on its own endpoint.
        statuses = db.session.execute(
            select(Delivery.status, func.count()).group_by(Delivery.status)
        )
        assert dict(statuses.all()) == {"succeeded": ROWS}
        attempt = db.session.scalar(select(Attempt).where(Attempt.id == history.max_attempt_id))
        envelope = json.loads(attempt.request_body)
        assert 900 < len(attempt.request_body) < 1200
        assert envelope["id"] == attempt.delivery.event_id
        assert len({len(a.request_body) for a in db.session.scalars(select(Attempt).limit(50))}) > 1
        endpoints = {d.endpoint_id for d in db.session.scalars(select(Delivery))}
        assert len(endpoints) == HISTORY_ENDPOINTS
        # Each delivery carries its event's type and merchant, as fan-out writes them (0011).
        copies = db.session.execute(
            select(Delivery.event_type, Delivery.merchant_id, Event.type, Event.merchant_id).join(
                Event, Delivery.event_id == Event.id
            )
        ).all()
        assert all(row[0] is not None and tuple(row[:2]) == tuple(row[2:]) for row in copies)

        # The monitor lists the newest, and the delivery page opens.
        html = viewer.get("/deliveries").get_data(as_text=True)
        assert f'id="delivery-{history.max_delivery_id}"' in html
        assert viewer.get(f"/deliveries/{history.max_delivery_id}").status_code == 200

        # Retention at its default keeps all of it.
        cutoff = retention_cutoff(30)
        assert purge_batch(cutoff) == (0, 0, 0) and purge_orphan_events(cutoff) == 0
        db.session.rollback()

        # A new event of the history's own type reaches none of the history endpoints.
        assert post_event("transaction.refunded").status_code == 202
        assert db.session.scalar(select(func.count()).select_from(Delivery)) == ROWS

        # The scenario's reset deletes a scenario's rows and none of the history.
        assert post_event("transaction.approved").status_code == 202  # to `endpoint`
        db.session.commit()
        bench_db = HistoryDatabase(environ, history)
        try:
            assert bench_db.deliveries() == 1
            bench_db.reset()
            assert bench_db.deliveries() == 0
        finally:
            bench_db.close()
        db.session.rollback()
        counts = [
            db.session.scalar(select(func.count()).select_from(t)) for t in (Delivery, Attempt)
        ]
        assert counts == [ROWS, ROWS]
        assert db.session.scalar(select(func.count()).select_from(Event)) == events
    finally:
        db.session.rollback()
        db.session.execute(text("DROP TABLE bench_history"))
        db.session.commit()
