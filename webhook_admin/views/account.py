"""The signed-in user's own account: password, two-factor authentication, sessions."""

from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash

from ..extensions import db
from ..forms import ChangePasswordForm, CodeForm, PasswordConfirmForm
from ..security_headers import no_store
from ..services.audit import record_audit
from ..services.mfa import (
    MfaError,
    admin_mfa_required,
    confirm_enrolment,
    new_recovery_codes,
    pending_secret,
    provisioning_uri,
    qr_data_uri,
    recovery_codes_left,
    reset_mfa,
    start_enrolment,
)
from ..services.users import UserError, end_sessions
from ..services.users import change_password as change_own_password

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("")
@login_required
def index():
    return redirect(url_for("account.mfa"))


@bp.get("/password")
@login_required
def password():
    return render_template("account/password.html", form=ChangePasswordForm())


@bp.post("/password")
@login_required
def change_password():
    form, user = ChangePasswordForm(), current_user._get_current_object()
    try:
        if not form.validate():
            raise UserError("fill in the current password and the new one twice")
        change_own_password(user, form.current.data, form.new.data, form.confirm.data)
    except UserError as exc:
        db.session.rollback()
        return render_template("account/password.html", form=form, error=str(exc)), 422
    login_user(user)  # this session carries the new session version; the others end
    db.session.commit()
    flash("Password changed. Your other sessions have ended.")
    return redirect(url_for("webhooks.index"), code=303)


def _mfa_page(status: int = 200, **context):
    user = current_user
    context.setdefault("form", CodeForm())
    context.setdefault("password_form", PasswordConfirmForm())
    body = render_template(
        "account/mfa.html",
        required=user.is_admin and admin_mfa_required(),
        codes_left=recovery_codes_left(user) if user.mfa_enabled else 0,
        **context,
    )
    return no_store(make_response(body, status))


def _setup_page(secret: str, status: int = 200, **context):
    uri = provisioning_uri(current_user, secret)
    return _mfa_page(status, setup_secret=secret, qr=qr_data_uri(uri), **context)


@bp.get("/mfa")
@login_required
def mfa():
    return _mfa_page()


@bp.post("/mfa/start")
@login_required
def mfa_start():
    try:
        secret = start_enrolment(current_user)
    except MfaError as exc:
        db.session.rollback()
        return _mfa_page(409, error=str(exc))
    db.session.commit()
    return _setup_page(secret)


@bp.post("/mfa/confirm")
@login_required
def mfa_confirm():
    form = CodeForm()
    try:
        codes = confirm_enrolment(current_user, form.code.data if form.validate() else "")
    except MfaError as exc:
        db.session.rollback()
        secret = pending_secret(current_user)
        if secret is None:
            return _mfa_page(409, error=str(exc))
        return _setup_page(secret, 422, error=str(exc))
    db.session.commit()
    return _mfa_page(recovery_codes=codes)


def _password_confirmed() -> bool:
    form = PasswordConfirmForm()
    return form.validate() and check_password_hash(current_user.password_hash, form.password.data)


@bp.post("/mfa/recovery-codes")
@login_required
def mfa_recovery_codes():
    if not current_user.mfa_enabled:
        return _mfa_page(409, error="two-factor authentication is not on")
    if not _password_confirmed():
        return _mfa_page(422, error="the password is not right")
    codes = new_recovery_codes(current_user)
    record_audit(current_user.email, "user.recovery_codes_new", "user", current_user.id)
    db.session.commit()
    return _mfa_page(recovery_codes=codes)


@bp.post("/mfa/disable")
@login_required
def mfa_disable():
    if current_user.is_admin and admin_mfa_required():
        return _mfa_page(409, error="two-factor authentication is required for every admin")
    if not _password_confirmed():
        return _mfa_page(422, error="the password is not right")
    reset_mfa(current_user)
    record_audit(current_user.email, "user.mfa_disable", "user", current_user.id)
    db.session.commit()
    flash("Two-factor authentication is off.")
    return redirect(url_for("account.mfa"), code=303)


@bp.post("/sessions/revoke")
@login_required
def revoke_sessions():
    """Log out everywhere: every session of this user ends, this one included."""
    user = current_user._get_current_object()
    end_sessions(user)
    record_audit(
        user.email, "user.sessions_revoke", "user", user.id, remote_addr=request.remote_addr
    )
    db.session.commit()
    logout_user()
    return redirect(url_for("auth.login"), code=303)
