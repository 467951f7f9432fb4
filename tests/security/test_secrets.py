"""Signing secrets never leak: not in the database, logs, job data, attempts; rotation works."""

from __future__ import annotations

import logging
import os
import zlib

import pytest
from sqlalchemy import text
from standardwebhooks import Webhook, WebhookVerificationError

from tests.conftest import valid_data
from tests.support.work import run_queued_jobs
from webhook_admin import clock
from webhook_admin.extensions import db
from webhook_admin.models import Endpoint
from webhook_admin.queues import get_redis
from webhook_admin.services.endpoint_secrets import replace_secret
from webhook_admin.services.endpoints import EndpointInput, create_endpoint


def add_endpoint(url):
    endpoint, secret = create_endpoint(EndpointInput(url, ["transaction.approved"]), "test")
    db.session.commit()
    return endpoint, secret


def database_text() -> str:
    """Everything the database holds for endpoints and attempts, as text."""
    if db.engine.dialect.name == "sqlite":
        db.session.commit()
        db.session.execute(text("PRAGMA wal_checkpoint(FULL)"))
        path = db.engine.url.database
        return "".join(
            open(p, "rb").read().decode("latin-1")
            for p in (path, path + "-wal")
            if os.path.exists(p)
        )
    rows = db.session.execute(
        text(
            "SELECT row_to_json(e)::text FROM endpoints e UNION ALL "
            "SELECT row_to_json(a)::text FROM attempts a"
        )
    ).scalars()
    return "\n".join(rows)


def key_material(secret: str) -> list[str]:
    """The secret and its base64 body: neither may appear anywhere."""
    return [secret, secret.removeprefix("whsec_")]


def test_the_database_never_holds_a_signing_secret_in_clear(app, post_event, receiver):
    endpoint, secret = add_endpoint(receiver.url)
    rotated = replace_secret(endpoint)
    db.session.commit()
    post_event()
    run_queued_jobs(app)
    assert receiver.requests
    stored = database_text()
    for value in key_material(secret) + key_material(rotated):
        assert value not in stored


def test_logs_of_a_full_delivery_hold_no_secret_or_signature(app, post_event, receiver, caplog):
    _, secret = add_endpoint(receiver.url)
    with caplog.at_level(logging.DEBUG):
        post_event(data=valid_data(card={"brand": "visa", "last4": "4242"}))
        run_queued_jobs(app)
    request = receiver.wait_for(1)[0]
    logs = caplog.text
    assert "delivery_id=" in logs  # the delivery was logged, with its ids
    for value in key_material(secret) + [request.headers["webhook-signature"][3:]]:
        assert value not in logs


def test_rq_job_data_holds_only_the_delivery_id(app, post_event, receiver):
    _, secret = add_endpoint(receiver.url)
    post_event()
    redis = get_redis()
    dumped = b""
    for key in redis.keys("*"):
        kind = redis.type(key)
        if kind == b"hash":
            dumped += b"".join(k + v for k, v in redis.hgetall(key).items())
        elif kind == b"list":
            dumped += b"".join(redis.lrange(key, 0, -1))
    job_hashes = [redis.hget(k, "data") for k in redis.keys("rq:job:*")]
    decoded = b"".join(zlib.decompress(d) for d in job_hashes if d)
    assert decoded  # the job exists
    for value in key_material(secret):
        assert value.encode() not in dumped + decoded


def test_attempt_records_mask_the_signature(app, post_event, receiver):
    add_endpoint(receiver.url)
    post_event()
    run_queued_jobs(app)
    signature = receiver.wait_for(1)[0].headers["webhook-signature"]
    assert signature[3:] not in database_text()


def test_after_rotation_both_secrets_sign_for_24_hours_then_only_the_new(app, post_event, receiver):
    endpoint, old = add_endpoint(receiver.url)
    new = replace_secret(db.session.get(Endpoint, endpoint.id))
    db.session.commit()

    post_event(event_id="evt_during")
    run_queued_jobs(app)
    during = receiver.wait_for(1)[0]
    assert len(during.headers["webhook-signature"].split()) == 2
    for secret in (old, new):
        Webhook(secret).verify(during.body, during.headers)

    clock.advance(24 * 3600 + 1)
    post_event(event_id="evt_after")
    run_queued_jobs(app)
    after = receiver.wait_for(2)[1]
    assert len(after.headers["webhook-signature"].split()) == 1
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_reencrypt_moves_every_secret_to_the_newest_key(environ, app, cli):
    from cryptography.fernet import Fernet

    from webhook_admin import create_app
    from webhook_admin.services.endpoint_secrets import decrypt_secret

    endpoint, secret = add_endpoint("https://a.example.com/hook")
    newest = Fernet.generate_key().decode()
    rotated_app = create_app(
        environ | {"WEBHOOK_ENCRYPTION_KEYS": f"{newest} {environ['WEBHOOK_ENCRYPTION_KEYS']}"}
    )
    with rotated_app.app_context():
        result = rotated_app.test_cli_runner().invoke(args=["secrets", "reencrypt"])
        assert "re-encrypted the secrets of 1 endpoints" in result.output
    only_newest = create_app(environ | {"WEBHOOK_ENCRYPTION_KEYS": newest})
    with only_newest.app_context():
        assert decrypt_secret(db.session.get(Endpoint, endpoint.id)) == secret
