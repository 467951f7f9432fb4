"""Log in and out. Failures are throttled in Redis and every attempt is audited."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..auth import safe_next
from ..clock import utcnow
from ..extensions import db
from ..forms import LoginForm
from ..queues import get_redis
from ..services import login_throttle
from ..services.audit import record_audit
from ..services.users import authenticate

bp = Blueprint("auth", __name__)
GENERIC_ERROR = "Invalid email or password"
THROTTLED_ERROR = "Too many failed attempts. Try again in 15 minutes."


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
    if login_throttle.is_throttled(redis, email, address):
        record_audit(email, "user.login_throttled", "user", None, remote_addr=address)
        db.session.commit()
        return render_template(
            "auth/login.html", form=form, error=THROTTLED_ERROR, next=next_url
        ), 429
    user = authenticate(email, form.password.data)
    if user is None:
        login_throttle.record_failure(redis, email, address)
        record_audit(email, "user.login_failed", "user", None, remote_addr=address)
        db.session.commit()
        return render_template(
            "auth/login.html", form=form, error=GENERIC_ERROR, next=next_url
        ), 401
    login_throttle.clear_account(redis, email)
    session.clear()  # a fresh session: nothing from before the login survives it
    login_user(user)
    user.last_login_at = utcnow()
    record_audit(user.email, "user.login", "user", user.id, remote_addr=address)
    db.session.commit()
    return redirect(next_url)


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
