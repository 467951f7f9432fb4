"""Operator accounts: scrypt-hashed passwords, roles admin and viewer."""

from __future__ import annotations

import functools
import secrets

from sqlalchemy import func, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import db
from ..models import ROLES, User
from .audit import record_audit

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
PASSWORD_METHOD = "scrypt"  # noqa: S105 (a hash method, not a password)
UNKNOWN_ACCOUNT = "(unknown account)"


class UserError(ValueError):
    pass


def normalise_email(email: str) -> str:
    email = (email or "").strip().lower()
    if "@" not in email or len(email) > 255 or any(c.isspace() for c in email):
        raise UserError(f"not an email address: {email!r}")
    return email


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise UserError(f"password must be at most {MAX_PASSWORD_LENGTH} characters")


def create_user(
    email: str, role: str, password: str | None, actor: str, *, invited: bool = False
) -> tuple[User, str]:
    """Create a user; returns it and the password (generated when none was given). An
    invited user's generated password must be changed at the first login."""
    email = normalise_email(email)
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if db.session.scalar(select(User).where(User.email == email)):
        raise UserError(f"a user with email {email} already exists")
    password = password or secrets.token_urlsafe(15)
    check_new_password(password)
    user = User(
        email=email,
        role=role,
        password_hash=generate_password_hash(password, PASSWORD_METHOD),
        must_change_password=invited,
        session_version=1,
    )
    db.session.add(user)
    db.session.flush()
    record_audit(actor, "user.create", "user", user.id, None, {"email": email, "role": role})
    return user, password


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == (email or "").strip().lower()))


@functools.cache
def _unknown_account_hash() -> str:
    """A hash of a random password with the same method and cost as every user's."""
    return generate_password_hash(secrets.token_urlsafe(16), PASSWORD_METHOD)


def authenticate(email: str, password: str) -> User | None:
    """The user when the password is theirs and they are active. Every attempt costs one
    scrypt check, unknown emails included, so the time taken does not tell who exists."""
    user = find_user(email)
    if user is None:
        check_password_hash(_unknown_account_hash(), password)
        return None
    if not check_password_hash(user.password_hash, password) or not user.active:
        return None
    return user


def audit_name(email: str) -> str:
    """What the audit log records for a failed login: the email of an existing account,
    else a placeholder; never the typed text, which may be a password in the wrong field."""
    user = find_user(email)
    return user.email if user is not None else UNKNOWN_ACCOUNT


def end_sessions(user: User) -> None:
    """Every session of this user ends at its next request (auth.load_user compares)."""
    db.session.execute(
        update(User)
        .where(User.id == user.id)
        .values(session_version=User.session_version + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(user, ["session_version"])


def change_password(user: User, current: str, new: str, confirm: str) -> None:
    """The user's own change: the current password first; every other session ends."""
    if not check_password_hash(user.password_hash, current or ""):
        raise UserError("the current password is not right")
    if new != confirm:
        raise UserError("the new passwords do not match")
    check_new_password(new or "")
    if check_password_hash(user.password_hash, new):
        raise UserError("the new password must differ from the current one")
    user.password_hash = generate_password_hash(new, PASSWORD_METHOD)
    user.must_change_password = False
    db.session.flush()
    end_sessions(user)
    record_audit(user.email, "user.password_change", "user", user.id)


def count_admins() -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(User.role == "admin"))
