"""Operator accounts (admins only): invite, disable / enable, change role."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from ..auth import actor, admin_required
from ..extensions import db
from ..forms import InviteUserForm, RoleForm
from ..models import User
from ..services.mfa import admin_mfa_required, set_admin_mfa_required
from ..services.user_admin import (
    UserChangeRefused,
    list_users,
    reset_two_factor,
    revoke_sessions,
    set_active,
    set_role,
)
from ..services.users import UserError, create_user
from .common import done, render_error

bp = Blueprint("users", __name__, url_prefix="/users")


def load(user_id: int) -> User:
    return db.session.get(User, user_id) or abort(404)


@bp.get("")
@admin_required
def index():
    return render_template("users/index.html", **_page_context(form=InviteUserForm()))


def _page_context(**context) -> dict:
    return {"users": list_users(), "mfa_required": admin_mfa_required(), **context}


@bp.post("")
@admin_required
def invite():
    form = InviteUserForm()
    try:
        if not form.validate():
            raise UserError("; ".join(f"{k}: {v[0]}" for k, v in form.errors.items()))
        user, password = create_user(form.email.data, form.role.data, None, actor(), invited=True)
    except UserError as exc:
        db.session.rollback()
        return render_template("users/index.html", **_page_context(form=form, error=str(exc))), 422
    db.session.commit()
    response = render_template(
        "users/index.html",
        **_page_context(form=InviteUserForm(formdata=None), invited=user, password=password),
    )
    return response, 201, {"Cache-Control": "no-store"}


def _change(user_id: int, change) -> object:
    user = load(user_id)
    try:
        change(user)
    except UserChangeRefused as exc:
        db.session.rollback()
        return render_error(409, "Not changed", str(exc).capitalize() + ".")
    db.session.commit()
    return done(
        f"{user.email} updated.",
        url_for("users.index"),
        "users/_row.html",
        user=user,
        role_form=RoleForm(),
    )


@bp.post("/<int:user_id>/disable")
@admin_required
def disable(user_id: int):
    return _change(user_id, lambda u: set_active(u, False, actor()))


@bp.post("/<int:user_id>/enable")
@admin_required
def enable(user_id: int):
    return _change(user_id, lambda u: set_active(u, True, actor()))


@bp.post("/<int:user_id>/role")
@admin_required
def change_role(user_id: int):
    return _change(user_id, lambda u: set_role(u, request.form.get("role", ""), actor()))


@bp.post("/<int:user_id>/sessions/revoke")
@admin_required
def end_sessions(user_id: int):
    return _change(user_id, lambda u: revoke_sessions(u, actor()))


@bp.post("/<int:user_id>/mfa/reset")
@admin_required
def reset_mfa(user_id: int):
    return _change(user_id, lambda u: reset_two_factor(u, actor()))


@bp.post("/mfa-policy")
@admin_required
def mfa_policy():
    """Require (or stop requiring) two-factor authentication for every admin."""
    on = request.form.get("require") == "on"
    set_admin_mfa_required(on, actor())
    db.session.commit()
    flash(
        "Two-factor authentication is now required for every admin."
        if on
        else "Two-factor authentication is no longer required."
    )
    return redirect(url_for("users.index"), code=303)
