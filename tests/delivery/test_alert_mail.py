"""Alert email to admins for endpoint.disabled and delivery.exhausted, sent by a real worker
process's maintenance job to a real SMTP server (aiosmtpd) on 127.0.0.1, never from the
request or the delivery's own path; at most one per endpoint and type an hour."""

from __future__ import annotations

import dataclasses
import socket
import time
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller

from tests.support.receiver import Receiver, Reply
from webhook_admin.config import SmtpUrlError, smtp_parts
from webhook_admin.extensions import db
from webhook_admin.queues import MAINTENANCE, get_queue
from webhook_admin.services.endpoints import EndpointInput, create_endpoint, disable_endpoint
from webhook_admin.services.users import create_user

PASSWORD = "correct horse battery staple"


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.url = f"smtp://127.0.0.1:{controller.port}"
    yield inbox
    controller.stop()


@pytest.fixture
def environ(environ, smtp_server):
    return environ | {"SMTP_URL": smtp_server.url, "ALERT_EMAIL_FROM": "alerts@example.com"}


@pytest.fixture
def people(app):
    create_user("zoe-admin@example.com", "admin", PASSWORD, "test")
    create_user("amy-admin@example.com", "admin", PASSWORD, "test")
    create_user("vic-viewer@example.com", "viewer", PASSWORD, "test")
    db.session.commit()


def wait_for(inbox, count, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(inbox.messages) < count:
        time.sleep(0.1)
    return inbox.messages


def test_an_operator_disable_is_mailed_to_the_admins_by_a_worker(
    app, people, smtp_server, start_worker
):
    endpoint, _ = create_endpoint(
        EndpointInput("http://127.0.0.1:9/shop", ["transaction.approved"]), "ops@example.com"
    )
    disable_endpoint(endpoint, "ops@example.com", "merchant migrating")
    db.session.commit()
    # Queued by the commit, not sent: no worker runs yet, nothing arrived.
    assert get_queue(MAINTENANCE).count == 1 and smtp_server.messages == []
    start_worker("--no-sweeper")
    ((rcpt, message),) = wait_for(smtp_server, 1)
    assert sorted(rcpt) == ["amy-admin@example.com", "zoe-admin@example.com"]  # no viewer
    assert message["From"] == "alerts@example.com"
    assert message["Subject"] == (
        "[webhook-admin] Endpoint disabled (manual): http://127.0.0.1:9/shop"
    )
    body = message.get_payload()
    assert "note: merchant migrating" in body and "disabled_by: ops@example.com" in body


def test_exhausted_deliveries_are_mailed_once_an_hour_per_endpoint(
    app, people, smtp_server, start_worker, post_event
):
    with Receiver(lambda request: Reply(status=500)) as failing:
        create_endpoint(EndpointInput(failing.url, ["transaction.approved"]), "ops@example.com")
        db.session.commit()
        start_worker("--no-sweeper", WEBHOOK_RETRY_SCHEDULE="0")
        post_event(event_id="evt_mail_1")
        post_event(event_id="evt_mail_2")
        failing.wait_for(4)
        messages = wait_for(smtp_server, 1)
        time.sleep(2)  # the second exhausted delivery's job has run by now
    assert len(messages) == 1
    (_, message) = messages[0]
    assert message["Subject"].startswith("[webhook-admin] Delivery exhausted: transaction.approved")
    assert "last_status: 500" in message.get_payload()


def test_without_smtp_settings_nothing_is_queued(app, people, monkeypatch):
    settings = dataclasses.replace(app.config["SETTINGS"], smtp_url=None)
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    endpoint, _ = create_endpoint(
        EndpointInput("http://127.0.0.1:9/x", ["transaction.approved"]), "ops@example.com"
    )
    disable_endpoint(endpoint, "ops@example.com")
    db.session.commit()
    assert get_queue(MAINTENANCE).count == 0


def test_smtp_url_errors_name_the_problem_without_the_password():
    assert smtp_parts("smtps://u:p%40ss@mail.example:465")["password"] == "p@ss"
    assert smtp_parts("smtp://mail.example")["starttls"] is True  # 587
    for bad, said in (
        ("http://mail.example", "smtp:// or smtps://"),
        ("smtp://", "needs a host"),
        ("smtp://u:secret@mail.example:xx", "not a number"),
    ):
        with pytest.raises(SmtpUrlError, match=said) as caught:
            smtp_parts(bad)
        assert "secret" not in str(caught.value)


def test_smtp_settings_are_checked_at_start_and_kept_out_of_the_repr():
    from tests.test_config import production
    from webhook_admin.config import ConfigError, load_settings

    settings = load_settings(
        production(SMTP_URL="smtp://alerts:mail-pw-1@mail.example:587", ALERT_EMAIL_FROM="a@x.io")
    )
    assert settings.alert_email_from == "a@x.io" and "mail-pw-1" not in repr(settings)
    with pytest.raises(ConfigError, match="SMTP_URL must start with smtp://"):
        load_settings(production(SMTP_URL="mailto:ops@example.com"))
