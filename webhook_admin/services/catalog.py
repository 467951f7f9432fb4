"""The event catalog: seeded from webhook_admin/data/catalog.json, editable by admins."""

from __future__ import annotations

import json
from importlib import resources

from sqlalchemy import select

from ..extensions import db
from ..models import Category, EventType

TEST_EVENT_TYPE = "webhook.test"


def load_catalog_file() -> dict:
    return json.loads(resources.files("webhook_admin.data").joinpath("catalog.json").read_text())


def seed_catalog(catalog: dict | None = None) -> dict[str, int]:
    """Add what the file has and the database lacks; never overwrites admin edits (a type
    without a schema gets the file's, with its sensitive-field marks; one without a trigger
    condition, as every type has after migration 0007, gets the file's)."""
    catalog = catalog or load_catalog_file()
    added = {"categories": 0, "event_types": 0}
    categories = {c.name: c for c in db.session.scalars(select(Category))}
    existing = {t.name: t for t in db.session.scalars(select(EventType))}
    types = set(existing)
    for entry in catalog["categories"]:
        category = categories.get(entry["name"])
        if category is None:
            category = Category(name=entry["name"], description=entry.get("description", ""))
            db.session.add(category)
            categories[entry["name"]] = category
            added["categories"] += 1
        for item in entry.get("event_types", []):
            if item["name"] in types:
                known = existing.get(item["name"])
                if known is not None and known.json_schema is None and item.get("schema"):
                    known.json_schema = item["schema"]
                if known is not None and not known.trigger_condition:
                    known.trigger_condition = item.get("trigger_condition", "")
                continue
            db.session.add(
                EventType(
                    name=item["name"],
                    category=category,
                    description=item.get("description", ""),
                    trigger_condition=item.get("trigger_condition", ""),
                    example_payload=item.get("example", {}),
                    json_schema=item.get("schema"),
                    expires_after_seconds=item.get("expires_after_seconds"),
                )
            )
            types.add(item["name"])
            added["event_types"] += 1
    db.session.flush()
    return added


def list_catalog() -> list[Category]:
    return list(db.session.scalars(select(Category).order_by(Category.name)))
