"""Who is logged in, and what they may do: the user loader and role checks for views."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar
from urllib.parse import urlsplit

from flask import Flask, abort, redirect, request, url_for
from flask_login import current_user, login_required

from .extensions import db, login_manager
from .models import User

F = TypeVar("F", bound=Callable)


def load_user(user_id: str) -> User | None:
    """The session's user, when the session is still good: the user is active and the
    session names their current session version (`<id>.<version>`, User.get_id). Disabling
    a user, a password change and "log out everywhere" bump the version, so every session
    made before ends at its next request."""
    raw_id, _, version = (user_id or "").partition(".")
    try:
        user = db.session.get(User, int(raw_id))
    except (TypeError, ValueError):
        return None
    if user is None or not user.active or version != str(user.session_version):
        return None
    return user


def unauthorized():
    """Pages redirect to the login form; htmx requests get 401 and an HX-Redirect back to the
    page the operator was on (not the fragment or the POST they sent)."""
    if request.headers.get("HX-Request"):
        page = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = page.path + (f"?{page.query}" if page.query else "") if page.path else None
        target = url_for("auth.login", next=back or request.full_path.rstrip("?"))
        return "", 401, {"HX-Redirect": target}
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def safe_next(value: str | None) -> str:
    """Only a path on this site: never an open redirect to another host."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return url_for("webhooks.index")
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return url_for("webhooks.index")
    return value


def admin_required(view: F) -> F:
    """Logged in and an admin; a viewer gets 403 whatever the UI shows."""

    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def actor() -> str:
    """The name audit entries record for the current user."""
    return current_user.email


def remote_addr() -> str | None:
    """The client's address (behind trusted proxies: theirs, see proxies.py)."""
    return request.remote_addr


# What a user who still owes a step (a new password, an authenticator) may reach.
ACCOUNT_STEP_VIEWS = {
    "static",
    "auth.logout",
    "account.password",
    "account.change_password",
    "account.mfa",
    "account.mfa_start",
    "account.mfa_confirm",
}


def redirect_to(target: str):
    if request.headers.get("HX-Request"):
        return "", 401, {"HX-Redirect": target}
    return redirect(target)


def require_account_steps():
    """Before anything else: an invite's password changed, an admin's MFA set up (when
    required for every admin)."""
    if request.blueprint in ("api", "management") or request.endpoint in ACCOUNT_STEP_VIEWS:
        return None  # the APIs have no sessions (ingest: no user to load on its hot path)
    if not current_user.is_authenticated:
        return None
    if current_user.must_change_password:
        return redirect_to(url_for("account.password"))
    from .services.mfa import must_enrol

    if must_enrol(current_user):
        return redirect_to(url_for("account.mfa"))
    return None


def init_auth(app: Flask) -> None:
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(unauthorized)
    login_manager.session_protection = "strong"
    app.before_request(require_account_steps)
