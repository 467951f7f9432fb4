"""The append-only audit log: who changed what, with before and after (never secrets)."""

from __future__ import annotations

from ..clock import utcnow
from ..extensions import db
from ..models import AuditEntry

REDACTED_KEYS = {"secret", "password", "password_hash", "secret_encrypted"}


def _clean(values: dict | None) -> dict | None:
    if values is None:
        return None
    return {k: v for k, v in values.items() if k not in REDACTED_KEYS}


def record_audit(
    actor: str,
    action: str,
    target_type: str,
    target_id: object = None,
    before: dict | None = None,
    after: dict | None = None,
    remote_addr: str | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        at=utcnow(),
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        before=_clean(before),
        after=_clean(after),
        remote_addr=remote_addr,
    )
    db.session.add(entry)
    return entry
