"""API tokens: create (shown once), authenticate a bearer token, list, revoke.

A token is `whadm_` and 43 URL-safe characters (256 random bits): the prefix lets secret
scanners and people recognise a leaked one. The database keeps its SHA-256 only."""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from ..clock import utcnow
from ..extensions import db
from ..models import SCOPE_ADMIN, SCOPE_READ, SCOPES, ApiToken, User
from .audit import record_audit

log = logging.getLogger(__name__)
TOKEN_PREFIX = "whadm_"  # noqa: S105 (a prefix, not a secret)
SHOWN_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6
MAX_NAME_LENGTH = 80
# last_used_at is written at most this often per token (a write per request is wasted I/O).
LAST_USED_GRANULARITY = timedelta(seconds=60)


class TokenError(ValueError):
    """Field name -> message, like the other services' validation errors."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def create_token(user: User, name: str, scope: str, actor: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns it and the clear token to show once. A viewer can
    hold read tokens only: a token never exceeds its user's role."""
    errors = {}
    name = (name or "").strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        errors["name"] = f"name must be 1 to {MAX_NAME_LENGTH} characters"
    if scope not in SCOPES:
        errors["scope"] = f"scope must be one of {', '.join(SCOPES)}, got {scope!r}"
    elif scope == SCOPE_ADMIN and not user.is_admin:
        errors["scope"] = f"{user.email} is a {user.role}: only read tokens"
    if not user.active:
        errors["user"] = f"{user.email} is disabled"
    if errors:
        raise TokenError(errors)
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user=user,
        name=name,
        scope=scope,
        token_hash=hash_token(raw),
        prefix=raw[:SHOWN_PREFIX_LENGTH],
        created_by=actor,
    )
    db.session.add(token)
    db.session.flush()
    record_audit(
        actor,
        "api_token.create",
        "api_token",
        token.id,
        None,
        {"user": user.email, "name": name, "scope": scope, "prefix": token.prefix},
    )
    log.info("api token created token_id=%s user_id=%s scope=%s", token.id, user.id, scope)
    return token, raw


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the token, its user, and what it may do right now."""

    token: ApiToken
    user: User

    @property
    def can_write(self) -> bool:
        """Admin scope and, checked at every request, a user who is an admin now."""
        return self.token.scope == SCOPE_ADMIN and self.user.is_admin

    @property
    def actor(self) -> str:
        """The audit log's actor: the user and the token they acted through."""
        return f"{self.user.email} via token {self.token.name!r} #{self.token.id}"[:255]


def authenticate(raw: str | None) -> Principal | None:
    """The principal of a bearer token, or None: unknown, revoked, or its user disabled
    (checked on every request, so disabling a user stops their tokens at once). May
    update the token's last-used time: the caller commits."""
    if not raw or not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    digest = hash_token(raw)
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    if token.revoked_at is not None or not token.user.active:
        return None
    _touch(token)
    return Principal(token, token.user)


def _touch(token: ApiToken) -> None:
    now = utcnow()
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_GRANULARITY:
        return
    token.last_used_at = now


def list_tokens(user: User | None = None) -> list[ApiToken]:
    """One user's tokens, or every token (for an admin), newest first."""
    query = select(ApiToken).order_by(ApiToken.id.desc())
    if user is not None:
        query = query.where(ApiToken.user_id == user.id)
    return list(db.session.scalars(query))


def revoke_token(token: ApiToken, actor: str) -> bool:
    """Revoke at once; False if it was already revoked."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    db.session.flush()
    record_audit(
        actor,
        "api_token.revoke",
        "api_token",
        token.id,
        {"revoked": False},
        {"revoked": True, "user": token.user.email, "name": token.name},
    )
    return True


def token_dict(token: ApiToken) -> dict:
    """A token's metadata (never the token or its hash)."""
    from .serialize import iso

    return {
        "id": token.id,
        "name": token.name,
        "scope": token.scope,
        "user": token.user.email,
        "prefix": token.prefix,
        "created_at": iso(token.created_at),
        "last_used_at": iso(token.last_used_at),
        "revoked_at": iso(token.revoked_at),
    }


__all__ = [
    "SCOPE_ADMIN",
    "SCOPE_READ",
    "TOKEN_PREFIX",
    "Principal",
    "TokenError",
    "authenticate",
    "create_token",
    "list_tokens",
    "revoke_token",
    "token_dict",
]
