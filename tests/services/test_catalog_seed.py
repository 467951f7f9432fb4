"""The seed on an upgraded deployment: trigger conditions filled, admin edits kept."""

from __future__ import annotations

from sqlalchemy import select, update

from webhook_admin.extensions import db
from webhook_admin.models import EventType
from webhook_admin.services.catalog import load_catalog_file, seed_catalog

SEEDED = {t["name"]: t for c in load_catalog_file()["categories"] for t in c["event_types"]}


def test_the_seed_fills_empty_trigger_conditions_and_keeps_edited_ones_and_schemas(app):
    # As after migration 0007 on a database seeded before it: every trigger empty.
    db.session.execute(update(EventType).values(trigger_condition=""))
    edited = db.session.scalar(select(EventType).where(EventType.name == "payout.paid"))
    edited.trigger_condition = "Our own words."
    edited.json_schema = {"type": "object"}  # an admin's (or the first catalog's) schema
    db.session.commit()
    assert seed_catalog() == {"categories": 0, "event_types": 0}
    db.session.commit()
    stored = {t.name: t for t in db.session.scalars(select(EventType))}
    assert stored["payout.paid"].trigger_condition == "Our own words."
    assert stored["payout.paid"].json_schema == {"type": "object"}
    for name, item in SEEDED.items():
        if name != "payout.paid":
            assert stored[name].trigger_condition == item["trigger_condition"]
            assert stored[name].json_schema == item["schema"]
