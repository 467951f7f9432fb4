"""Log in (password, then a second factor when the user has one) and out.

Attempts are counted in Redis before the password is checked (services/login_throttle.py),
and every attempt is audited under the account's email, or a placeholder when the typed text
names no account (it may be a password typed into the wrong field)."""

from __future__ import annotations

from datetime import UTC

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..auth import safe_next
from ..clock import utcnow
from ..extensions import db
from ..forms import CodeForm, LoginForm
from ..models import User
from ..queues import get_redis
from ..services import login_throttle
from ..services.audit import record_audit
from ..services.mfa import use_recovery_code, verify_totp
from ..services.users import audit_name, authenticate

bp = Blueprint("auth", __name__)
GENERIC_ERROR = "Invalid email or password"
THROTTLED_ERROR = "Too many failed attempts. Try again in 15 minutes."
CODE_ERROR = "That code is not right (or was used already)."
PENDING_SECONDS = 300  # the password step holds for 5 minutes while the code is typed


@bp.route("/login", methods=["GET", "POST"])
def login():
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url)
    form = LoginForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        error = GENERIC_ERROR if request.method == "POST" else None
        return render_template("auth/login.html", form=form, error=error, next=next_url), status
    email = form.email.data.strip().lower()
    redis, address = get_redis(), request.remote_addr
    if not login_throttle.count_attempt(redis, email, address):
        record_audit(audit_name(email), "user.login_throttled", "user", None, remote_addr=address)
        db.session.commit()
        return render_template(
            "auth/login.html", form=form, error=THROTTLED_ERROR, next=next_url
        ), 429
    user = authenticate(email, form.password.data)
    if user is None:
        record_audit(audit_name(email), "user.login_failed", "user", None, remote_addr=address)
        db.session.commit()
        return render_template(
            "auth/login.html", form=form, error=GENERIC_ERROR, next=next_url
        ), 401
    login_throttle.forgive_attempt(redis, email, address)
    if user.mfa_enabled:
        session.clear()
        session["mfa_pending"] = {"user": user.get_id(), "at": _now_seconds()}
        return redirect(url_for("auth.second_factor", next=next_url))
    return _complete_login(user, "password", next_url)


def _complete_login(user: User, method: str, next_url: str):
    session.clear()  # a fresh session: nothing from before the login survives it
    login_user(user)
    user.last_login_at = utcnow()
    record_audit(
        user.email,
        "user.login",
        "user",
        user.id,
        after={"method": method},
        remote_addr=request.remote_addr,
    )
    db.session.commit()
    return redirect(next_url)


def _now_seconds() -> int:
    return int(utcnow().replace(tzinfo=UTC).timestamp())


def _pending_user() -> User | None:
    """The user whose password was right a moment ago, if that is still true."""
    pending = session.get("mfa_pending") or {}
    if _now_seconds() - int(pending.get("at", 0)) > PENDING_SECONDS:
        return None
    raw_id, _, version = str(pending.get("user", "")).partition(".")
    user = db.session.get(User, int(raw_id)) if raw_id.isdigit() else None
    if user is None or not user.active or not user.mfa_enabled:
        return None
    return user if str(user.session_version) == version else None


@bp.route("/login/code", methods=["GET", "POST"])
def second_factor():
    next_url = safe_next(request.args.get("next"))
    user = _pending_user()
    if user is None:
        session.pop("mfa_pending", None)
        return redirect(url_for("auth.login", next=next_url))
    form = CodeForm()
    if not form.validate_on_submit():
        status = 400 if request.method == "POST" else 200
        error = CODE_ERROR if request.method == "POST" else None
        return render_template("auth/code.html", form=form, error=error, next=next_url), status
    redis, address = get_redis(), request.remote_addr
    if not login_throttle.count_code_attempt(redis, user.id):
        record_audit(user.email, "user.mfa_throttled", "user", user.id, remote_addr=address)
        db.session.commit()
        session.pop("mfa_pending", None)
        return render_template(
            "auth/code.html", form=form, error=THROTTLED_ERROR, next=next_url
        ), 429
    code = form.code.data.strip()
    method = "totp" if verify_totp(user, code) else None
    if method is None and use_recovery_code(user, code):
        method = "recovery_code"
    if method is None:
        record_audit(user.email, "user.mfa_failed", "user", user.id, remote_addr=address)
        db.session.commit()
        return render_template("auth/code.html", form=form, error=CODE_ERROR, next=next_url), 401
    login_throttle.forgive_code_attempts(redis, user.id)
    return _complete_login(user, method, next_url)


@bp.post("/logout")
@login_required
def logout():
    record_audit(
        current_user.email, "user.logout", "user", current_user.id, remote_addr=request.remote_addr
    )
    db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))
