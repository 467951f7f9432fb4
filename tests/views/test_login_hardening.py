"""The login throttle counts before the password check, atomically; unknown emails cost the
same scrypt check; what is typed into the email field stays out of the audit log and Redis."""

from __future__ import annotations

import threading
import time

import requests
from sqlalchemy import func, select

from tests.views.conftest import PASSWORD, Session, csrf_token, make_user
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry
from webhook_admin.queues import get_redis
from webhook_admin.services.users import authenticate

PARALLEL = 16


def count(action: str) -> int:
    db.session.rollback()
    return db.session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == action)
    )


def test_parallel_wrong_passwords_get_at_most_five_password_checks(app, live_server):
    """Sixteen guesses at once: checking first and counting after the ~50 ms scrypt check
    let every one of them through to the check."""
    make_user("ops@example.com", "admin")
    sessions, forms = [], []
    for _ in range(PARALLEL):
        session = requests.Session()
        page = session.get(live_server + "/login", timeout=10).text
        sessions.append(session)
        forms.append(
            {
                "email": "ops@example.com",
                "password": "wrong password!!",
                "csrf_token": csrf_token(page),
            }
        )
    barrier = threading.Barrier(PARALLEL)
    statuses: list[int] = []

    def guess(session, form):
        barrier.wait()
        response = session.post(live_server + "/login", data=form, timeout=60)
        statuses.append(response.status_code)

    threads = [
        threading.Thread(target=guess, args=pair) for pair in zip(sessions, forms, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert sorted(statuses) == [401] * 5 + [429] * (PARALLEL - 5)
    assert count("user.login_failed") == 5
    assert count("user.login_throttled") == PARALLEL - 5


def test_a_good_login_does_not_count_against_its_address(app, client):
    """Attempts are counted before the check; a success gives its attempt back, so six
    colleagues behind one address can all log in."""
    for n in range(8):
        make_user(f"user{n}@example.com", "viewer")
    for n in range(8):
        assert Session(app.test_client()).login(f"user{n}@example.com").status_code == 302


def test_unknown_emails_cost_the_same_scrypt_check(app):
    make_user("ops@example.com", "admin")

    def seconds(email: str) -> float:
        started = time.perf_counter()
        assert authenticate(email, "wrong password!!") is None
        return time.perf_counter() - started

    seconds("nobody@example.com")  # the placeholder hash is made once, on first use
    # Alternating, and the fastest of each: a busy host slows single checks, not the least.
    pairs = [(seconds("ops@example.com"), seconds(f"nobody{n}@example.com")) for n in range(7)]
    known = min(k for k, _ in pairs)
    unknown = min(u for _, u in pairs)
    assert known > 0.005  # scrypt, not a fast hash
    assert unknown > known * 0.5, (known, unknown)


def test_a_password_typed_into_the_email_field_is_not_on_the_audit_page(app, admin, client):
    typed = "Tr0ub4dor&3-horse-battery"
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"email": typed, "password": typed, "csrf_token": csrf_token(page)})
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.login_failed"))
    assert entry.actor == "(unknown account)"
    audit_page = admin.get("/audit").get_data(as_text=True)
    assert "user.login_failed" in audit_page and typed not in audit_page
    redis = get_redis()
    assert all(typed.lower() not in key.decode() for key in redis.keys("*"))


def test_a_failed_login_of_a_real_account_is_audited_under_its_email(app, client):
    make_user("ops@example.com", "admin")
    Session(client).login("OPS@example.com ", "wrong password!!")
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "user.login_failed"))
    assert entry.actor == "ops@example.com"


def test_the_account_is_locked_for_everyone_after_five_failures_even_the_right_password(
    app, client
):
    make_user("ops@example.com", "admin")
    for _ in range(5):
        assert Session(client).login("ops@example.com", "wrong password!!").status_code == 401
    assert Session(app.test_client()).login("ops@example.com", PASSWORD).status_code == 429
