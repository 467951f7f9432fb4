"""Admin changes to operator accounts: disable / enable and change role, never locking out
the last active admin."""

from __future__ import annotations

from sqlalchemy import func, select

from ..extensions import db
from ..models import ROLE_ADMIN, ROLES, User
from .audit import record_audit


class UserChangeRefused(ValueError):
    pass


def _active_admins() -> int:
    return db.session.scalar(
        select(func.count()).select_from(User).where(User.role == ROLE_ADMIN, User.active.is_(True))
    )


def _guard_last_admin(user: User) -> None:
    if user.role == ROLE_ADMIN and user.active and _active_admins() <= 1:
        raise UserChangeRefused("this is the last active admin; make another admin first")


def set_active(user: User, active: bool, actor: str) -> None:
    if user.active == active:
        return
    if user.email == actor and not active:
        raise UserChangeRefused("you cannot disable your own account")
    if not active:
        _guard_last_admin(user)
    user.active = active
    db.session.flush()
    record_audit(
        actor,
        "user.enable" if active else "user.disable",
        "user",
        user.id,
        {"active": not active},
        {"active": active},
    )


def set_role(user: User, role: str, actor: str) -> None:
    if role not in ROLES:
        raise UserChangeRefused(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if user.role == role:
        return
    if role != ROLE_ADMIN:
        _guard_last_admin(user)
    before = user.role
    user.role = role
    db.session.flush()
    record_audit(actor, "user.role_change", "user", user.id, {"role": before}, {"role": role})


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.email)))
