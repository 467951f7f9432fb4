"""TOTP two-factor authentication: enrolment, login with a code or a recovery code, replay
and guessing refused, and the admin setting that requires it for every admin."""

from __future__ import annotations

import re
import time

import pyotp
from sqlalchemy import select

from tests.security.test_secrets import database_text
from tests.views.conftest import PASSWORD, Session, csrf_token, make_user
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry, RecoveryCode, User


def user(email: str) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


def enrol(session: Session) -> tuple[str, list[str]]:
    """Set up TOTP through the pages; returns the secret and the recovery codes."""
    page = session.post("/account/mfa/start").get_data(as_text=True)
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', page).group(1)
    response = session.post("/account/mfa/confirm", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 200
    codes = re.findall(
        r"<li><code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code></li>", response.get_data(as_text=True)
    )
    return secret, codes


def next_code(secret: str) -> str:
    """The code of the next 30-second step: accepted (one step of drift), and never the one
    the enrolment just used."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def log_in_with_code(app, email: str, code: str):
    session = Session(app.test_client())
    first = session.login(email)
    assert first.status_code == 302 and first.headers["Location"].startswith("/login/code")
    page = session.client.get(first.headers["Location"]).get_data(as_text=True)
    response = session.client.post(
        first.headers["Location"], data={"code": code, "csrf_token": csrf_token(page)}
    )
    return session, response


def test_enrolment_shows_a_qr_code_and_needs_a_code_to_turn_on(app, admin):
    page = admin.post("/account/mfa/start")
    html = page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "no-store"
    assert 'src="data:image/svg+xml' in html
    secret = re.search(r'<code id="totp-secret">([A-Z2-7]+)</code>', html).group(1)
    wrong = admin.post("/account/mfa/confirm", {"code": "000000"})
    assert wrong.status_code == 422 and not user("admin@example.com").mfa_enabled
    right = admin.post("/account/mfa/confirm", {"code": pyotp.TOTP(secret).now()})
    assert right.status_code == 200 and right.headers["Cache-Control"] == "no-store"
    assert user("admin@example.com").mfa_enabled
    assert db.session.scalar(select(RecoveryCode.id).limit(1)) is not None
    assert "user.mfa_enable" in db.session.scalars(select(AuditEntry.action)).all()


def test_the_totp_secret_and_recovery_codes_are_not_stored_in_clear(app, admin):
    secret, codes = enrol(admin)
    rows = [
        *db.session.execute(select(User.__table__)),
        *db.session.execute(select(RecoveryCode.__table__)),
    ]
    stored = database_text() + "\n".join(str(row) for row in rows)
    assert secret not in stored
    assert all(code not in stored and code.replace("-", "") not in stored for code in codes)


def test_login_needs_the_code_after_the_password(app, admin):
    secret, _ = enrol(admin)
    session = Session(app.test_client())
    first = session.login("admin@example.com")
    assert first.headers["Location"].startswith("/login/code")
    assert session.get("/webhooks").status_code == 302  # the password alone is no session
    _, response = log_in_with_code(app, "admin@example.com", next_code(secret))
    assert response.status_code == 302 and response.headers["Location"] == "/webhooks"


def test_a_code_is_good_once(app, admin):
    secret, _ = enrol(admin)
    code = next_code(secret)
    assert log_in_with_code(app, "admin@example.com", code)[1].status_code == 302
    assert log_in_with_code(app, "admin@example.com", code)[1].status_code == 401


def test_a_recovery_code_logs_in_once(app, admin):
    _, codes = enrol(admin)
    assert len(codes) == 10
    session, response = log_in_with_code(app, "admin@example.com", codes[0].upper())
    assert response.status_code == 302
    assert session.get("/webhooks").status_code == 200
    assert log_in_with_code(app, "admin@example.com", codes[0])[1].status_code == 401
    login = db.session.scalars(
        select(AuditEntry).where(AuditEntry.action == "user.login").order_by(AuditEntry.id.desc())
    ).first()
    assert login.after == {"method": "recovery_code"}


def test_five_wrong_codes_lock_the_second_step(app, admin):
    secret, _ = enrol(admin)
    for _ in range(5):
        assert log_in_with_code(app, "admin@example.com", "123456")[1].status_code == 401
    assert log_in_with_code(app, "admin@example.com", next_code(secret))[1].status_code == 429


def test_when_required_an_admin_without_mfa_must_enrol_first(app, admin, viewer):
    assert admin.post("/users/mfa-policy", {"require": "on"}).status_code == 303
    newcomer = Session(app.test_client())
    make_user("second@example.com", "admin")
    newcomer.login("second@example.com")
    response = newcomer.get("/webhooks")
    assert response.status_code == 302 and response.headers["Location"] == "/account/mfa"
    assert viewer.get("/webhooks").status_code == 200  # viewers are not admins
    enrol(newcomer)
    assert newcomer.get("/webhooks").status_code == 200


def test_mfa_cannot_be_turned_off_while_required(app, admin):
    enrol(admin)
    admin.post("/users/mfa-policy", {"require": "on"})
    response = admin.post("/account/mfa/disable", {"password": PASSWORD})
    assert response.status_code == 409
    assert user("admin@example.com").mfa_enabled


def test_a_user_turns_mfa_off_with_their_password(app, admin):
    enrol(admin)
    assert admin.post("/account/mfa/disable", {"password": "wrong password!!"}).status_code == 422
    assert admin.post("/account/mfa/disable", {"password": PASSWORD}).status_code == 303
    assert not user("admin@example.com").mfa_enabled
    assert Session(app.test_client()).login("admin@example.com").headers["Location"] == "/webhooks"


def test_a_viewer_cannot_change_the_policy_or_reset_anyones_mfa(app, admin, viewer):
    enrol(admin)
    assert viewer.post("/users/mfa-policy", {"require": "on"}).status_code == 403
    target = user("admin@example.com")
    assert viewer.post(f"/users/{target.id}/mfa/reset").status_code == 403
    assert user("admin@example.com").mfa_enabled


def test_an_admin_resets_a_lost_authenticator(app, admin, viewer):
    enrol(viewer)
    target = user("viewer@example.com")
    assert admin.post(f"/users/{target.id}/mfa/reset", htmx=True).status_code == 200
    assert not user("viewer@example.com").mfa_enabled
    assert viewer.get("/webhooks").status_code == 302  # their sessions ended too
    assert Session(app.test_client()).login("viewer@example.com").headers["Location"] == "/webhooks"
