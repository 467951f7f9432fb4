"""Admin changes to operator accounts: disable / enable, change role, end sessions, reset
two-factor; never leaving no active admin, even when two admins change each other at once."""

from __future__ import annotations

from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import aliased

from ..extensions import db
from ..models import ROLE_ADMIN, ROLES, User
from .audit import record_audit
from .mfa import reset_mfa
from .users import end_sessions


class UserChangeRefused(ValueError):
    pass


LAST_ADMIN = "this is the last active admin; make another admin first"


def _update_keeping_an_admin(user: User, **values) -> None:
    """Apply `values` to the user unless that leaves no other active admin, in one
    conditional UPDATE (refused: UserChangeRefused).

    Counting first and updating after let two admins disable each other at the same time,
    each counting the other. On PostgreSQL the active admins' rows are locked first (in id
    order), so a concurrent change waits and then sees the committed result; SQLite runs
    the statement under its single write lock, which gives the same order."""
    db.session.flush()
    db.session.execute(
        select(User.id)
        .where(User.role == ROLE_ADMIN, User.active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()
    other = aliased(User)
    another_admin = exists().where(
        other.role == ROLE_ADMIN, other.active.is_(True), other.id != user.id
    )
    result = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            or_(User.role != ROLE_ADMIN, User.active.is_(False), another_admin),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise UserChangeRefused(LAST_ADMIN)
    db.session.refresh(user)


def set_active(user: User, active: bool, actor: str) -> None:
    if user.active == active:
        return
    if user.email == actor and not active:
        raise UserChangeRefused("you cannot disable your own account")
    if active:
        user.active = True
        db.session.flush()
    else:
        _update_keeping_an_admin(user, active=False)
        end_sessions(user)
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
    before = user.role
    if role == ROLE_ADMIN:
        user.role = role
        db.session.flush()
    else:
        _update_keeping_an_admin(user, role=role)
    record_audit(actor, "user.role_change", "user", user.id, {"role": before}, {"role": role})


def revoke_sessions(user: User, actor: str) -> None:
    """End every session of this user now (a lost laptop, a departure)."""
    end_sessions(user)
    record_audit(actor, "user.sessions_revoke", "user", user.id)


def reset_two_factor(user: User, actor: str) -> None:
    """Remove a user's authenticator and recovery codes (a lost phone); their sessions end,
    and an admin must enrol again at the next login when MFA is required."""
    if not user.mfa_enabled and user.totp_secret_encrypted is None:
        return
    reset_mfa(user)
    end_sessions(user)
    record_audit(actor, "user.mfa_reset", "user", user.id)


def list_users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.email)))
