"""Login, logout, throttling, anonymous access, roles and CSRF."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.views.conftest import Session, csrf_token, make_user
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry

MUTATIONS = [
    ("/webhooks", {}),
    ("/webhooks/{id}", {}),
    ("/webhooks/{id}/delete", {}),
    ("/webhooks/{id}/disable", {}),
    ("/webhooks/{id}/enable", {}),
    ("/webhooks/{id}/test", {}),
    ("/webhooks/{id}/secret/reveal", {}),
    ("/webhooks/{id}/secret/rotate", {}),
    ("/deliveries/1/retry", {}),
    ("/deliveries/bulk-retry", {"endpoint_id": "{id}"}),
    ("/catalog/categories", {"name": "X"}),
    ("/catalog/event-types", {"name": "x.y"}),
    ("/catalog/event-types/1/edit", {}),
    ("/users", {"email": "a@b.c", "role": "admin"}),
    ("/users/1/disable", {}),
    ("/users/1/enable", {}),
    ("/users/1/role", {"role": "admin"}),
    ("/users/1/sessions/revoke", {}),
    ("/users/1/mfa/reset", {}),
    ("/users/mfa-policy", {"require": "on"}),
    ("/webhooks/{id}/headers/reveal", {}),
    ("/webhooks/{id}/replay", {}),
    ("/webhooks/resend", {"endpoint_id": "{id}", "event_id": "evt_x"}),
]


def actions(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def test_login_with_good_password_redirects_and_audits(app, client):
    make_user("ops@example.com", "admin")
    response = Session(client).login("ops@example.com")
    assert response.status_code == 302
    assert [e.actor for e in actions("user.login")] == ["ops@example.com"]


def test_login_with_bad_password_shows_generic_error_and_audits(app, client):
    make_user("ops@example.com", "admin")
    response = Session(client).login("ops@example.com", "wrong password!!")
    assert response.status_code == 401
    assert "Invalid email or password" in response.get_data(as_text=True)
    assert len(actions("user.login_failed")) == 1


def test_unknown_email_gets_the_same_generic_error(app, client):
    response = Session(client).login("nobody@example.com", "whatever password")
    assert "Invalid email or password" in response.get_data(as_text=True)


def test_five_failures_lock_the_account_even_with_the_right_password(app, client):
    make_user("ops@example.com", "admin")
    session = Session(client)
    for _ in range(5):
        session.login("ops@example.com", "wrong password!!")
    response = session.login("ops@example.com")
    assert response.status_code == 429
    assert len(actions("user.login_throttled")) == 1


def test_disabled_user_cannot_log_in(app, admin, client):
    make_user("gone@example.com", "viewer")
    from webhook_admin.models import User

    user = db.session.scalar(select(User).where(User.email == "gone@example.com"))
    admin.post(f"/users/{user.id}/disable")
    assert Session(client).login("gone@example.com").status_code == 401


def test_login_ignores_offsite_next(app, client):
    make_user("ops@example.com", "admin")
    page = client.get("/login")
    response = client.post(
        "/login?next=//evil.example/x",
        data={
            "email": "ops@example.com",
            "password": "correct horse battery staple",
            "csrf_token": csrf_token(page.get_data(as_text=True)),
        },
    )
    assert response.headers["Location"] == "/webhooks"


def test_logout_ends_the_session(admin):
    assert admin.post("/logout").status_code == 302
    assert admin.get("/webhooks").status_code == 302


@pytest.mark.parametrize(
    "path",
    [
        "/webhooks",
        "/deliveries",
        "/events",
        "/catalog",
        "/audit",
        "/users",
        "/webhooks/1",
        "/deliveries/1",
    ],
)
def test_anonymous_page_request_redirects_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/login?next=" in response.headers["Location"]


def test_anonymous_htmx_request_gets_401_with_hx_redirect(client):
    response = client.get("/webhooks", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login")


@pytest.mark.parametrize(("path", "data"), MUTATIONS)
def test_viewer_gets_403_on_every_mutation(viewer, endpoint, path, data):
    data = {k: v.format(id=endpoint.id) for k, v in data.items()}
    response = viewer.post(path.format(id=endpoint.id), data, htmx=True)
    assert response.status_code == 403


def test_viewer_sees_no_mutating_buttons(viewer, endpoint):
    html = viewer.get("/webhooks").get_data(as_text=True)
    for label in ("Add webhook", ">Edit<", ">Delete<", ">Disable<", "Send test event"):
        assert label not in html


def test_viewer_cannot_open_users_page(viewer):
    assert viewer.get("/users").status_code == 403


def test_post_without_csrf_token_is_rejected_with_400(admin, endpoint):
    response = admin.post(f"/webhooks/{endpoint.id}/disable", csrf=False, htmx=True)
    assert response.status_code == 400
    db.session.refresh(endpoint)
    assert endpoint.enabled


def test_login_without_csrf_token_is_rejected(app, client):
    make_user("ops@example.com", "admin")
    response = client.post(
        "/login", data={"email": "ops@example.com", "password": "correct horse battery staple"}
    )
    assert response.status_code == 400
    assert not actions("user.login")


def test_security_headers_on_every_response(viewer):
    for path in ("/webhooks", "/static/app.css", "/login"):
        headers = viewer.get(path).headers
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "Strict-Transport-Security" not in headers  # only in production


def test_session_cookie_is_httponly_and_lax(app, client):
    make_user("ops@example.com", "admin")
    response = Session(client).login("ops@example.com")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_pages_have_no_inline_script_or_style(admin, endpoint):
    for path in ("/webhooks", f"/webhooks/{endpoint.id}", "/deliveries", "/catalog"):
        html = admin.get(path).get_data(as_text=True)
        assert "<script>" not in html and "style=" not in html and "<style" not in html
