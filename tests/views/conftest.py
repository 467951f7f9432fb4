"""Logged-in clients for the admin views: they fetch a real CSRF token and send it back."""

from __future__ import annotations

import re

import pytest
from flask import g

from webhook_admin.extensions import db
from webhook_admin.services.endpoints import EndpointInput, create_endpoint
from webhook_admin.services.users import create_user

PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|"X-CSRFToken": "([^"]+)"')


def csrf_token(html: str) -> str:
    match = TOKEN.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1) or match.group(2)


class Session:
    """A test client that logs in through the form and sends the CSRF token like htmx does."""

    def __init__(self, client):
        self.client = client
        self.token: str | None = None

    def login(self, email: str, password: str = PASSWORD):
        page = self.client.get("/login")
        response = self.client.post(
            "/login",
            data={
                "email": email,
                "password": password,
                "csrf_token": csrf_token(page.get_data(as_text=True)),
            },
        )
        if response.status_code == 302:
            # The session's token, as the body carries it (a user who owes a step first, a
            # new password or an authenticator, is sent on to that page: it has one too).
            page = self.client.get("/catalog", follow_redirects=True)
            self.token = csrf_token(page.get_data(as_text=True))
        return response

    def get(self, url: str, htmx: bool = False, **kwargs):
        headers = kwargs.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        return self.client.get(url, headers=headers, **kwargs)

    def post(self, url: str, data=None, htmx: bool = False, csrf: bool = True, **kwargs):
        headers = kwargs.pop("headers", {})
        if htmx:
            headers["HX-Request"] = "true"
        if csrf:
            headers["X-CSRFToken"] = self.token or ""
        return self.client.post(url, data=data or {}, headers=headers, **kwargs)


@pytest.fixture(autouse=True)
def fresh_login_per_request(app):
    """The app fixture keeps one app context open, so `g` outlives a request; forget the
    logged-in user and CSRF token between requests, as a real server does, so that clients
    do not share them."""

    def forget_user() -> None:
        for name in ("_login_user", "csrf_token"):
            g.pop(name, None)

    # First, before the app's own hooks (auth.require_account_steps reads the user).
    app.before_request_funcs.setdefault(None, []).insert(0, forget_user)


def make_user(email: str, role: str) -> None:
    create_user(email, role, PASSWORD, "test")
    db.session.commit()


@pytest.fixture
def admin(app):
    make_user("admin@example.com", "admin")
    session = Session(app.test_client())
    assert session.login("admin@example.com").status_code == 302
    return session


@pytest.fixture
def viewer(app):
    make_user("viewer@example.com", "viewer")
    session = Session(app.test_client())
    assert session.login("viewer@example.com").status_code == 302
    return session


@pytest.fixture
def endpoint(app):
    """An enabled endpoint on a loopback URL (private networks are allowed in tests)."""
    created, secret = create_endpoint(
        EndpointInput(
            "http://127.0.0.1:9/hook", ["transaction.approved"], "Transactions", description="ERP"
        ),
        "test",
    )
    db.session.commit()
    created.test_secret = secret
    return created
