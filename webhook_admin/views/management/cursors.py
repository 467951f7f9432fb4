"""Keyset cursors (opaque to clients) and times as the database keeps them (naive UTC)."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from .problems import ApiProblem

BAD_CURSOR = "after must be the `next` of a previous page"


def _refuse() -> ApiProblem:
    return ApiProblem(422, BAD_CURSOR, [{"field": "after", "message": "not a cursor"}])


def id_cursor(after: str | None, maximum: int = 2**63 - 1) -> int | None:
    """Lists by id, newest first: the cursor is the last id shown."""
    if after is None:
        return None
    if not after.isdigit() or not 0 < int(after) <= maximum:
        raise _refuse()
    return int(after)


def encode_event_cursor(value: str | None) -> str | None:
    """Events page by (received time, id): carried base64url-encoded."""
    return base64.urlsafe_b64encode(value.encode()).decode() if value else None


def event_cursor(after: str | None) -> str | None:
    if after is None:
        return None
    try:
        value = base64.urlsafe_b64decode(after.encode("ascii")).decode()
        at, sep, event_id = value.partition("|")
        datetime.fromisoformat(at)
    except (ValueError, binascii.Error, UnicodeError):
        raise _refuse() from None
    if not sep or not event_id or "\x00" in value:
        raise _refuse()
    return value


def naive_utc(value: datetime | None) -> datetime | None:
    """An aware time in UTC without its zone; a naive one is taken as UTC already."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)
