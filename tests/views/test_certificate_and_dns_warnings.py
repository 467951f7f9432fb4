"""Certificate and DNS early warnings: a trustme certificate expiring in 10 days on a TLS
receiver on 127.0.0.1 is recorded (notAfter, issuer) from the handshake, warned about on
the endpoint and management pages, and announced once per stage (14 and 3 days, the clock
moved) as endpoint.certificate_expiring to an operations endpoint; a host name that does
not resolve shows its own DNS warning, not the HTTP failure one."""

from __future__ import annotations

import json
import ssl
from datetime import UTC, datetime, timedelta

import pytest
import trustme

from tests.support.receiver import Receiver, Reply
from tests.support.work import run_queued_jobs
from webhook_admin import clock
from webhook_admin.clock import utcnow
from webhook_admin.delivery import certificates
from webhook_admin.extensions import db
from webhook_admin.models import Endpoint
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


@pytest.fixture
def ca():
    return trustme.CA(organization_name="Short Lived Test CA")


@pytest.fixture
def environ(environ, ca, tmp_path):
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return environ | {"WEBHOOK_CA_BUNDLE": str(path), "WEBHOOK_RETRY_SCHEDULE": "0,0,0"}


@pytest.fixture
def expiring_receiver(ca):
    """HTTPS on 127.0.0.1 with a certificate that expires in 10 days."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    not_after = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
    ca.issue_cert("127.0.0.1", not_after=not_after).configure_cert(context)
    with Receiver(tls_context=context) as receiver:
        receiver.not_after = not_after.replace(tzinfo=None)
        yield receiver


def add(url, **kwargs) -> Endpoint:
    endpoint, _ = create_endpoint(EndpointInput(url, **kwargs), "test")
    db.session.commit()
    return endpoint


def test_a_near_expiry_certificate_is_recorded_warned_and_announced_per_stage(
    app, admin, post_event, expiring_receiver
):
    with Receiver() as ops:
        add(ops.url, category="System", all_category_events=True)
        shop = add(
            f"https://127.0.0.1:{expiring_receiver.port}/hook", event_types=["transaction.approved"]
        )
        for n in range(3):
            post_event(event_id=f"evt_tls_{n}")
        run_queued_jobs(app)
        assert len(expiring_receiver.requests) == 3
        db.session.expire_all()
        shop = db.session.get(Endpoint, shop.id)
        assert shop.cert_not_after == expiring_receiver.not_after
        assert "O=Short Lived Test CA" in shop.cert_issuer
        assert shop.cert_days_left in (9, 10)

        # The warning on the endpoint page and on the management page.
        for url in (f"/webhooks/{shop.id}", "/webhooks"):
            page = admin.get(url).get_data(as_text=True)
            assert "Certificate expires" in page and "Short Lived Test CA" in page, url

        # endpoint.certificate_expiring: once at 14 days, once at 3, never twice.
        assert certificates.warn_expiring(utcnow()) == 1
        db.session.commit()
        assert certificates.warn_expiring(utcnow()) == 0
        clock.advance(8 * 86400)  # 1-2 days left
        assert certificates.warn_expiring(utcnow()) == 1
        db.session.commit()
        assert certificates.warn_expiring(utcnow()) == 0
        db.session.commit()
        run_queued_jobs(app)
        sent = [json.loads(r.body) for r in ops.requests]
    warnings = [e["data"] for e in sent if e["type"] == "endpoint.certificate_expiring"]
    assert [w["stage_days"] for w in warnings] == [14, 3]
    assert warnings[0]["endpoint_id"] == shop.id and warnings[0]["days_left"] in (9, 10)
    assert warnings[0]["not_after"] == expiring_receiver.not_after.isoformat() + "Z"


def test_a_healthy_certificate_shows_no_warning_and_a_renewal_resets_the_stages(app, admin):
    endpoint = add("https://127.0.0.1:9/renewed", event_types=["transaction.approved"])
    soon = certificates.CertInfo(utcnow() + timedelta(days=2), "O=Old CA", "01")
    certificates.note(endpoint.id, soon)
    certificates.write_pending(db.session.connection())
    db.session.commit()
    assert certificates.warn_expiring(utcnow()) == 1
    db.session.commit()
    renewed = certificates.CertInfo(utcnow() + timedelta(days=90), "O=New CA", "02")
    certificates.note(endpoint.id, renewed)
    certificates.write_pending(db.session.connection())
    db.session.commit()
    db.session.expire_all()
    endpoint = db.session.get(Endpoint, endpoint.id)
    assert endpoint.cert_warned_days is None and endpoint.cert_issuer == "O=New CA"
    assert certificates.warn_expiring(utcnow()) == 0
    assert "Certificate expires" not in admin.get(f"/webhooks/{endpoint.id}").get_data(as_text=True)


def test_repeated_dns_failures_are_their_own_warning(app, admin, post_event):
    with Receiver(lambda request: Reply(status=500)) as failing:
        unresolvable = add("http://hooks.invalid/hook", event_types=["transaction.approved"])
        erroring = add(failing.url, event_types=["transaction.approved"])
        post_event(event_id="evt_dns")
        run_queued_jobs(app)
    db.session.expire_all()
    unresolvable = db.session.get(Endpoint, unresolvable.id)
    erroring = db.session.get(Endpoint, erroring.id)
    assert unresolvable.last_attempt_error == "dns" and unresolvable.dns_failing
    assert erroring.last_attempt_status == 500 and not erroring.dns_failing
    page = admin.get("/webhooks").get_data(as_text=True)
    assert page.count("Host name does not resolve") == 1
    own = admin.get(f"/webhooks/{unresolvable.id}").get_data(as_text=True)
    assert "Host name does not resolve" in own and "hooks.invalid" in own
    other = admin.get(f"/webhooks/{erroring.id}").get_data(as_text=True)
    assert "Host name does not resolve" not in other
