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
    """Sessions of disabled users end at their next request."""
    try:
        user = db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None
    return user if user is not None and user.active else None


def unauthorized():
    """Pages redirect to the login form; htmx requests get 401 and an HX-Redirect."""
    target = url_for("auth.login", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request"):
        return "", 401, {"HX-Redirect": target}
    return redirect(target)


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
    return request.remote_addr


def init_auth(app: Flask) -> None:
    login_manager.user_loader(load_user)
    login_manager.unauthorized_handler(unauthorized)
    login_manager.session_protection = "strong"
