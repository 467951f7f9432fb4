"""Own password changes, an invite's first password, revocable sessions, the last admin."""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import select

from tests.views.conftest import PASSWORD, Session, make_user
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry, User
from webhook_admin.services.user_admin import UserChangeRefused, set_active, set_role

NEW_PASSWORD = "a brand new long passphrase"


def user(email: str) -> User:
    db.session.expire_all()
    return db.session.scalar(select(User).where(User.email == email))


def actions() -> list[str]:
    return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def change(session: Session, current: str, new: str, confirm: str | None = None):
    return session.post(
        "/account/password",
        {"current": current, "new": new, "confirm": new if confirm is None else confirm},
    )


def test_a_user_changes_their_own_password(app, viewer):
    response = change(viewer, PASSWORD, NEW_PASSWORD)
    assert response.status_code == 303
    assert viewer.get("/webhooks").status_code == 200  # this session goes on
    assert Session(app.test_client()).login("viewer@example.com").status_code == 401
    assert Session(app.test_client()).login("viewer@example.com", NEW_PASSWORD).status_code == 302
    assert "user.password_change" in actions()


@pytest.mark.parametrize(
    ("current", "new", "confirm", "message"),
    [
        ("wrong password!!", NEW_PASSWORD, None, "current password is not right"),
        (PASSWORD, "short", None, "at least 12"),
        (PASSWORD, NEW_PASSWORD, NEW_PASSWORD + "x", "do not match"),
        (PASSWORD, PASSWORD, None, "must differ"),
    ],
)
def test_a_password_change_is_refused_with_the_reason(viewer, current, new, confirm, message):
    response = change(viewer, current, new, confirm)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert (
        Session(viewer.client.application.test_client()).login("viewer@example.com").status_code
        == 302
    )


def test_changing_the_password_ends_the_other_sessions(app, viewer):
    laptop = Session(app.test_client())
    assert laptop.login("viewer@example.com").status_code == 302
    assert laptop.get("/webhooks").status_code == 200
    change(viewer, PASSWORD, NEW_PASSWORD)
    assert laptop.get("/webhooks").status_code == 302  # to the login page
    assert viewer.get("/webhooks").status_code == 200


def invite(admin: Session, email: str) -> str:
    html = admin.post("/users", {"email": email, "role": "viewer"}).get_data(as_text=True)
    return re.search(r'<code id="invite-password">([^<]+)</code>', html).group(1)


def test_an_invites_first_password_must_be_changed_before_anything_else(app, admin):
    one_time = invite(admin, "new@example.com")
    newcomer = Session(app.test_client())
    assert newcomer.login("new@example.com", one_time).status_code == 302
    for path in ("/webhooks", "/deliveries", "/audit"):
        response = newcomer.get(path)
        assert response.status_code == 302 and response.headers["Location"] == "/account/password"
    htmx = newcomer.get("/deliveries", htmx=True)
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"] == "/account/password"
    assert newcomer.get("/account/password").status_code == 200
    assert change(newcomer, one_time, NEW_PASSWORD).status_code == 303
    assert newcomer.get("/webhooks").status_code == 200
    assert not user("new@example.com").must_change_password


def test_a_user_created_with_a_chosen_password_is_not_asked_to_change_it(app, viewer):
    assert viewer.get("/webhooks").status_code == 200


def test_log_out_everywhere_ends_every_session_of_the_user(app, viewer):
    phone = Session(app.test_client())
    phone.login("viewer@example.com")
    assert viewer.post("/account/sessions/revoke").status_code == 303
    assert viewer.get("/webhooks").status_code == 302
    assert phone.get("/webhooks").status_code == 302
    assert Session(app.test_client()).login("viewer@example.com").status_code == 302
    assert "user.sessions_revoke" in actions()


def test_an_admin_ends_another_users_sessions(app, admin, viewer):
    target = user("viewer@example.com")
    assert admin.post(f"/users/{target.id}/sessions/revoke", htmx=True).status_code == 200
    assert viewer.get("/webhooks").status_code == 302
    assert admin.get("/webhooks").status_code == 200


def test_disabling_a_user_ends_their_sessions_even_after_enabling_again(app, admin, viewer):
    target = user("viewer@example.com")
    admin.post(f"/users/{target.id}/disable")
    admin.post(f"/users/{target.id}/enable")
    assert viewer.get("/webhooks").status_code == 302


def test_a_session_from_before_the_version_change_is_refused(app, viewer):
    """The session names `<id>.<version>`; the same id with another version is no session."""
    with viewer.client.session_transaction() as cookie:
        user_id, _, version = cookie["_user_id"].partition(".")
        cookie["_user_id"] = f"{user_id}.{int(version) + 1}"
    assert viewer.get("/webhooks").status_code == 302


def test_two_admins_disabling_each_other_at_once_leave_one_admin(app):
    """Each change locks the active admins first; counting then updating let both pass."""
    make_user("a@example.com", "admin")
    make_user("b@example.com", "admin")
    a_id, b_id = user("a@example.com").id, user("b@example.com").id
    first_done, outcomes = threading.Event(), {}

    def disable(target_id: int, actor: str, hold: bool) -> None:
        with app.app_context():
            try:
                set_active(db.session.get(User, target_id), False, actor)
                if hold:
                    first_done.set()
                    time.sleep(1.0)  # the other change starts while this one is open
                db.session.commit()
                outcomes[actor] = "disabled"
            except UserChangeRefused:
                db.session.rollback()
                outcomes[actor] = "refused"
            finally:
                db.session.remove()

    first = threading.Thread(target=disable, args=(a_id, "b@example.com", True))
    first.start()
    assert first_done.wait(10)
    second = threading.Thread(target=disable, args=(b_id, "a@example.com", False))
    second.start()
    first.join(30)
    second.join(30)
    assert outcomes == {"b@example.com": "disabled", "a@example.com": "refused"}
    assert [u.email for u in db.session.scalars(select(User).where(User.active.is_(True)))] == [
        "b@example.com"
    ]


def test_the_last_admin_cannot_be_demoted_or_disabled(app):
    make_user("only@example.com", "admin")
    make_user("other@example.com", "admin")
    set_active(user("other@example.com"), False, "test")
    with pytest.raises(UserChangeRefused, match="last active admin"):
        set_role(user("only@example.com"), "viewer", "somebody")
    with pytest.raises(UserChangeRefused, match="last active admin"):
        set_active(user("only@example.com"), False, "somebody")
    db.session.rollback()
    assert user("only@example.com").role == "admin" and user("only@example.com").active
