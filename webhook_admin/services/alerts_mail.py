"""Email to the admins for the operational events that need a person (endpoint.disabled,
delivery.exhausted), when SMTP_URL is set. Never sent on the hot path: `queue_alert` only
notes the alert in the session, the commit queues an RQ job on the maintenance queue, and a
worker sends it with smtplib (standard library: one message to a few admins needs no more).

SMTP_URL: smtp://[user:password@]host[:port] (STARTTLS when the server offers it and the
URL says ?starttls=1, the default for port 587), or smtps://... (TLS from the start, 465).
The password is never logged and never in a job's arguments (the job reads the settings)."""

from __future__ import annotations

import logging
import smtplib
import ssl
from email.message import EmailMessage

from sqlalchemy import select

from ..config import smtp_parts
from ..extensions import db
from ..models import ROLE_ADMIN, User

log = logging.getLogger(__name__)
MAILED_TYPES = frozenset({"endpoint.disabled", "delivery.exhausted"})
SEND_FUNC = "webhook_admin.services.alerts_mail.send_alert"
SMTP_TIMEOUT = 10  # seconds: a stuck mail server must not hold a maintenance worker
PENDING_KEY = "alert_mails"
THROTTLE_SECONDS = 3600


def queue_alert(session, type_name: str, data: dict) -> None:
    """Note an email for after the commit (see operational_events' after_commit hook)."""
    if type_name in MAILED_TYPES:
        session.info.setdefault(PENDING_KEY, []).append((type_name, data))


def enqueue_pending(session) -> None:
    """After a commit: one maintenance job per noted alert, if mail is configured."""
    pending = session.info.pop(PENDING_KEY, None)
    if not pending:
        return
    from flask import current_app
    from redis.exceptions import RedisError

    from ..queues import MAINTENANCE, get_queue

    settings = current_app.config["SETTINGS"]
    if not settings.smtp_url or not settings.alert_email_from:
        return
    try:
        queue = get_queue(MAINTENANCE)
        for type_name, data in pending:
            queue.enqueue(SEND_FUNC, type_name, data, job_timeout=60, failure_ttl=86400)
    except RedisError as exc:
        log.warning("alert email not queued (Redis unavailable): %s", type(exc).__name__)


def admin_addresses() -> list[str]:
    return list(
        db.session.scalars(
            select(User.email)
            .where(User.role == ROLE_ADMIN, User.active.is_(True))
            .order_by(User.email)
        )
    )


def compose(type_name: str, data: dict, sender: str, recipients: list[str]) -> EmailMessage:
    message = EmailMessage()
    what = data.get("url") or f"endpoint {data.get('endpoint_id')}"
    if type_name == "endpoint.disabled":
        subject = f"[webhook-admin] Endpoint disabled ({data.get('reason')}): {what}"
    else:
        subject = f"[webhook-admin] Delivery exhausted: {data.get('event_type')} to {what}"
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    lines = [f"{type_name}", ""] + [f"{key}: {value}" for key, value in sorted(data.items())]
    message.set_content("\n".join(lines) + "\n")
    return message


def _first_this_hour(type_name: str, data: dict) -> bool:
    """delivery.exhausted: one email per endpoint an hour (an endpoint down exhausts its
    deliveries by the thousand; the rest are on the Deliveries page and in the webhooks)."""
    if type_name != "delivery.exhausted":
        return True
    from ..queues import get_redis, redis_key

    key = redis_key("alert-mail", type_name, str(data.get("endpoint_id")))
    if get_redis().set(key, "1", nx=True, ex=THROTTLE_SECONDS):
        return True
    log.info("alert email suppressed type=%s endpoint_id=%s", type_name, data.get("endpoint_id"))
    return False


def send_alert(type_name: str, data: dict) -> int:
    """The maintenance job: email the active admins; returns how many were addressed."""
    from flask import current_app

    settings = current_app.config["SETTINGS"]
    recipients = admin_addresses()
    if not recipients or not settings.smtp_url or not _first_this_hour(type_name, data):
        return 0
    smtp = smtp_parts(settings.smtp_url)
    message = compose(type_name, data, settings.alert_email_from, recipients)
    context = ssl.create_default_context()
    client_class = smtplib.SMTP_SSL if smtp["tls"] else smtplib.SMTP
    kwargs = {"context": context} if smtp["tls"] else {}
    with client_class(smtp["host"], smtp["port"], timeout=SMTP_TIMEOUT, **kwargs) as client:
        if smtp["starttls"] and not smtp["tls"]:
            client.starttls(context=context)
        if smtp["username"]:
            client.login(smtp["username"], smtp["password"] or "")
        client.send_message(message)
    log.info("alert email sent type=%s recipients=%d", type_name, len(recipients))
    return len(recipients)
