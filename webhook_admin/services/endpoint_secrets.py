"""Endpoint signing secrets: issue, rotate (the old one keeps signing for 0 h, 24 h or 7 days),
decrypt to sign."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from ..clock import utcnow
from ..models import Endpoint
from ..secrets_box import SecretBox, generate_signing_secret

ROTATION_OVERLAP = timedelta(hours=24)


def secret_box() -> SecretBox:
    return current_app.extensions["secret_box"]


def issue_secret(endpoint: Endpoint) -> str:
    """Give a new endpoint its secret; returns the clear value to show once."""
    secret = generate_signing_secret()
    endpoint.secret_encrypted = secret_box().encrypt(secret)
    return secret


# What an operator may choose: revoke the old secret now, a day (the default), a week.
ROTATION_OVERLAPS = {"0h": timedelta(0), "24h": ROTATION_OVERLAP, "7d": timedelta(days=7)}


def replace_secret(endpoint: Endpoint, overlap: timedelta = ROTATION_OVERLAP) -> str:
    """Unaudited (rotate_secret is the operator's flow). New secret signs now; the previous keeps signing beside it for `overlap` (24 h by
    default); with no overlap it stops at once."""
    if overlap > timedelta(0):
        endpoint.previous_secret_encrypted = endpoint.secret_encrypted
        endpoint.previous_secret_expires_at = utcnow() + overlap
    else:
        endpoint.previous_secret_encrypted = None
        endpoint.previous_secret_expires_at = None
    return issue_secret(endpoint)


def decrypt_secret(endpoint: Endpoint) -> str:
    """The secret in clear, unaudited (reveal_secret is the operator's flow)."""
    return secret_box().decrypt(endpoint.secret_encrypted)


def reveal_secret(endpoint: Endpoint, actor: str, remote_addr: str | None = None) -> str:
    """The secret in clear for an admin, with the audit entry that says who saw it."""
    from .audit import record_audit

    secret = decrypt_secret(endpoint)
    record_audit(actor, "endpoint.secret_reveal", "endpoint", endpoint.id, remote_addr=remote_addr)
    return secret


def rotate_secret(
    endpoint: Endpoint,
    actor: str,
    remote_addr: str | None = None,
    overlap: timedelta = ROTATION_OVERLAP,
) -> str:
    """Rotate (the previous secret keeps signing for `overlap`) and audit; the new one in
    clear."""
    from .audit import record_audit

    secret = replace_secret(endpoint, overlap)
    expires = endpoint.previous_secret_expires_at
    record_audit(
        actor,
        "endpoint.secret_rotate",
        "endpoint",
        endpoint.id,
        after={"previous_secret_expires_at": expires.isoformat() if expires else None},
        remote_addr=remote_addr,
    )
    from . import operational_events

    operational_events.endpoint_changed(
        operational_events.SECRET_ROTATED,
        endpoint,
        actor,
        {"previous_secret_expires_at": expires.isoformat() + "Z" if expires else None},
    )
    return secret


def encrypt_header_values(headers: dict[str, str]) -> dict[str, str]:
    """Custom headers as stored: names in clear (pages list them), values encrypted."""
    box = secret_box()
    return {name: box.encrypt(str(value)) for name, value in (headers or {}).items()}


def decrypt_header_values(stored: dict[str, str] | None, box: SecretBox | None = None) -> dict:
    """The values in clear, for the worker to send and an admin's audited reveal."""
    box = box or secret_box()
    return {name: box.decrypt(token) for name, token in (stored or {}).items()}


def reveal_header_values(endpoint: Endpoint, actor: str, remote_addr: str | None = None) -> dict:
    """Custom header values in clear for an admin, with the audit entry (names only)."""
    from .audit import record_audit

    values = decrypt_header_values(endpoint.custom_headers)
    record_audit(
        actor,
        "endpoint.headers_reveal",
        "endpoint",
        endpoint.id,
        after={"headers": sorted(values)},
        remote_addr=remote_addr,
    )
    return values


def reencrypt_header_values(stored: dict[str, str] | None) -> dict[str, str]:
    box = secret_box()
    return {name: box.rotate(token) for name, token in (stored or {}).items()}
