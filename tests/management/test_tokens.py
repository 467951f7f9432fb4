"""API tokens: hashed, prefixed, scoped by the user's current role, revocable, idempotency
and the rate limit per token; the CLI and the page."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from webhook_admin import create_app
from webhook_admin.extensions import db
from webhook_admin.models import ApiToken, AuditEntry, Endpoint, IdempotencyRecord
from webhook_admin.services.api_tokens import hash_token
from webhook_admin.services.user_admin import set_active

from .conftest import Api, token_for, user
from .test_endpoints_api import NEW, assert_problem


def test_token_is_prefixed_and_stored_only_as_its_hash(app):
    raw, token_id = token_for("admin@example.com", "admin", "admin")
    assert raw.startswith("whadm_") and len(raw) >= 40
    token = db.session.get(ApiToken, token_id)
    assert token.token_hash == hash_token(raw) and raw not in (token.prefix, token.token_hash)
    assert raw.startswith(token.prefix)


def test_last_used_time_is_recorded(admin_api, app):
    assert db.session.scalar(select(ApiToken.last_used_at)) is None
    response = admin_api.get("/api/v1/endpoints")
    assert response.headers["X-RateLimit-Limit"] == "600" and "Retry-After" not in response.headers
    db.session.expire_all()
    assert db.session.scalar(select(ApiToken.last_used_at)) is not None


def test_revoked_token_stops_at_once(admin_api, app):
    assert admin_api.get("/api/v1/endpoints").status_code == 200
    from webhook_admin.services.api_tokens import revoke_token

    revoke_token(db.session.scalar(select(ApiToken)), "test")
    db.session.commit()
    assert_problem(admin_api.get("/api/v1/endpoints"), 401)


def test_disabled_users_tokens_stop_at_once(admin_api, app):
    user("other-admin@example.com", "admin")  # the last admin cannot be disabled
    set_active(user("admin@example.com", "admin"), False, "test")
    db.session.commit()
    assert_problem(admin_api.get("/api/v1/endpoints"), 401)


def test_viewer_cannot_create_an_admin_token(app):
    from webhook_admin.services.api_tokens import TokenError, create_token

    with pytest.raises(TokenError, match="read tokens"):
        create_token(user("viewer@example.com", "viewer"), "x", "admin", "test")


def test_viewers_read_token_reads_but_never_writes(app):
    raw, _ = token_for("viewer@example.com", "viewer", "read")
    api = Api(app.test_client(), raw)
    assert api.get("/api/v1/endpoints").status_code == 200
    assert_problem(api.post("/api/v1/endpoints", json=NEW), 403)


def test_idempotency_key_replays_the_first_answer_and_does_nothing_again(admin_api):
    headers = {"Idempotency-Key": "onboard-m1"}
    first = admin_api.post("/api/v1/endpoints", json=NEW, headers=headers)
    again = admin_api.post("/api/v1/endpoints", json=dict(reversed(NEW.items())), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert db.session.query(Endpoint).count() == 1
    assert db.session.query(AuditEntry).filter_by(action="endpoint.create").count() == 1


def test_idempotency_key_with_another_body_is_refused(admin_api):
    headers = {"Idempotency-Key": "k1"}
    admin_api.post("/api/v1/endpoints", json=NEW, headers=headers)
    other = NEW | {"url": "http://127.0.0.1:9/other"}
    body = assert_problem(admin_api.post("/api/v1/endpoints", json=other, headers=headers), 422)
    assert "Idempotency-Key" in body["detail"]
    assert db.session.query(Endpoint).count() == 1


def test_idempotency_key_expires_after_24_hours(admin_api):
    from datetime import timedelta

    headers = {"Idempotency-Key": "k2"}
    admin_api.post("/api/v1/endpoints", json=NEW, headers=headers)
    record = db.session.scalar(select(IdempotencyRecord))
    record.created_at -= timedelta(hours=25)
    db.session.commit()
    assert (
        "Idempotent-Replayed"
        not in admin_api.post("/api/v1/endpoints", json=NEW, headers=headers).headers
    )
    assert db.session.query(Endpoint).count() == 2


def test_a_failed_request_is_not_recorded(admin_api):
    headers = {"Idempotency-Key": "k3"}
    assert_problem(admin_api.post("/api/v1/endpoints", json={"url": "x"}, headers=headers), 422)
    assert admin_api.post("/api/v1/endpoints", json=NEW, headers=headers).status_code == 201


def test_idempotency_key_must_be_visible_ascii(admin_api):
    headers = {"Idempotency-Key": "a b"}
    assert_problem(admin_api.post("/api/v1/endpoints", json=NEW, headers=headers), 400)


def test_idempotency_keys_are_per_token(admin_api, app):
    raw, _ = token_for("admin@example.com", "admin", "admin", "second")
    headers = {"Idempotency-Key": "same"}
    admin_api.post("/api/v1/endpoints", json=NEW, headers=headers)
    Api(app.test_client(), raw).post("/api/v1/endpoints", json=NEW, headers=headers)
    assert db.session.query(Endpoint).count() == 2


@pytest.fixture
def limited_app(environ):
    """The app with a limit of 3 requests a minute per token (Redis storage)."""
    app = create_app(environ | {"WEBHOOK_API_RATE_LIMIT": "3/minute"})
    with app.app_context():
        from webhook_admin.queues import get_redis

        get_redis().flushdb()
        yield app
        db.session.remove()


def test_rate_limit_answers_429_with_retry_after_per_token(limited_app):
    with limited_app.app_context():
        from tests.conftest import clean_database

        clean_database()
        one, _ = token_for("admin@example.com", "admin", "read", "one")
        two, _ = token_for("admin@example.com", "admin", "read", "two")
        api = Api(limited_app.test_client(), one)
        assert [api.get("/api/v1/categories").status_code for _ in range(3)] == [200] * 3
        fine = api.get("/api/v1/event-types")  # another route: the same per-token count
        assert_problem(fine, 429)
        limited = api.get("/api/v1/categories")
        assert_problem(limited, 429)
        assert 0 < int(limited.headers["Retry-After"]) <= 61
        assert limited.headers["X-RateLimit-Remaining"] == "0"
        assert Api(limited_app.test_client(), two).get("/api/v1/categories").status_code == 200
        from webhook_admin.queues import get_redis, redis_key

        assert get_redis().keys(redis_key("ratelimit") + "*")


def test_cli_creates_lists_and_revokes_tokens(cli, app):
    user("ops@example.com", "admin")
    result = cli.invoke(
        args=[
            "tokens",
            "create",
            "ops@example.com",
            "--name",
            "onboarding",
            "--scope",
            "admin",
            "--json",
        ]
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert created["token"].startswith("whadm_") and created["scope"] == "admin"
    assert Api(app.test_client(), created["token"]).get("/api/v1/endpoints").status_code == 200
    listed = json.loads(cli.invoke(args=["tokens", "list", "--json"]).output)
    assert listed[0]["name"] == "onboarding" and "token" not in listed[0]
    assert created["token"] not in cli.invoke(args=["tokens", "list"]).output
    result = cli.invoke(args=["tokens", "revoke", str(created["id"])])
    assert "revoked" in result.output
    assert Api(app.test_client(), created["token"]).get("/api/v1/endpoints").status_code == 401


def test_cli_refuses_an_admin_token_for_a_viewer(cli, app):
    user("v@example.com", "viewer")
    result = cli.invoke(
        args=["tokens", "create", "v@example.com", "--name", "x", "--scope", "admin"]
    )
    assert result.exit_code == 1 and "read tokens" in result.output


def test_kept_answers_are_encrypted_at_rest(admin_api):
    response = admin_api.post("/api/v1/endpoints", json=NEW, headers={"Idempotency-Key": "enc"})
    secret = response.get_json()["secret"]
    record = db.session.scalar(select(IdempotencyRecord))
    assert secret not in record.body and "whsec_" not in record.body


def test_unreachable_database_answers_a_503_problem_with_retry_after(
    app, migrated_database, redis_server, tmp_path
):
    from tests.conftest import test_environ as make_environ
    from tests.support.redis_server import free_port

    if migrated_database.startswith("postgresql"):
        url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"
    else:
        url = "sqlite:///" + str(tmp_path)  # a directory: SQLite cannot open it
    down = create_app(make_environ(url, redis_server.url))
    response = Api(down.test_client(), "whadm_" + "x" * 43).get("/api/v1/endpoints")
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"] == "5" and "database" in body["detail"]
