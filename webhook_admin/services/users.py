"""Operator accounts: scrypt-hashed passwords, roles admin and viewer."""

from __future__ import annotations

import secrets

from sqlalchemy import func, select
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import ROLES, User
from .audit import record_audit

MIN_PASSWORD_LENGTH = 12


class UserError(ValueError):
    pass


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 255 or any(c.isspace() for c in email):
        raise UserError(f"not an email address: {email!r}")
    return email


def create_user(email: str, role: str, password: str | None, actor: str) -> tuple[User, str]:
    """Create a user; returns it and the password (generated when none was given)."""
    email = normalise_email(email)
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if db.session.scalar(select(User).where(User.email == email)):
        raise UserError(f"a user with email {email} already exists")
    password = password or secrets.token_urlsafe(15)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    user = User(email=email, role=role, password_hash=generate_password_hash(password, "scrypt"))
    db.session.add(user)
    db.session.flush()
    record_audit(actor, "user.create", "user", user.id, None, {"email": email, "role": role})
    return user, password


def authenticate(email: str, password: str) -> User | None:
    user = db.session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None or not user.active or not check_password_hash(user.password_hash, password):
        return None
    return user


def count_admins() -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(User.role == "admin"))
