"""/healthz and /readyz: no login, JSON, 503 naming the failing check, no secrets."""

from __future__ import annotations

from sqlalchemy import text

from tests.conftest import test_environ as make_environ
from tests.support.redis_server import free_port
from webhook_admin import create_app
from webhook_admin.extensions import db


def test_healthz_answers_ok_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_reports_every_check_ok_when_all_reachable(client):
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert {name for name, check in body["checks"].items() if check["ok"]} == {
        "database",
        "redis",
        "migrations",
    }
    assert body["checks"]["migrations"]["current"] == body["checks"]["migrations"]["head"]


def test_readyz_is_503_when_redis_is_down(client, redis_outage):
    redis_outage()
    response = client.get("/readyz")
    body = response.get_json()
    assert response.status_code == 503
    assert body["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}
    assert body["checks"]["database"]["ok"] is True


def readyz_at_version(client, version: str | None):
    """/readyz with alembic_version set to `version` (None: no row), then put back."""
    current = db.session.scalar(text("SELECT version_num FROM alembic_version"))
    db.session.execute(text("DELETE FROM alembic_version"))
    if version is not None:
        db.session.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": version})
    db.session.commit()
    try:
        return client.get("/readyz"), current
    finally:
        db.session.execute(text("DELETE FROM alembic_version"))
        db.session.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": current})
        db.session.commit()


def test_readyz_is_503_when_migrations_are_behind(client):
    response, head = readyz_at_version(client, None)  # older than any revision of ours
    assert response.status_code == 503
    assert response.get_json()["checks"]["migrations"] == {
        "ok": False,
        "current": None,
        "head": head,
    }


def test_readyz_stays_ready_on_a_schema_migrated_by_newer_code(client):
    """A rolling deploy migrates first, then replaces the nodes: the old ones, which do not
    know the new revision, must stay in the load balancer until then."""
    response, head = readyz_at_version(client, "9001_added_by_the_next_release")
    assert response.status_code == 200
    assert response.get_json()["checks"]["migrations"] == {
        "ok": True,
        "current": "9001_added_by_the_next_release",
        "head": head,
        "ahead": True,
    }


def unreachable_database_url(database_url: str, tmp_path) -> str:
    if database_url.startswith("postgresql"):
        return f"postgresql://secret-user:secret-pw@127.0.0.1:{free_port()}/nowhere"
    return "sqlite:///" + str(tmp_path)  # a directory: SQLite cannot open it


def test_readyz_is_503_without_leaking_the_url_when_database_unreachable(
    migrated_database, redis_server, tmp_path
):
    url = unreachable_database_url(migrated_database, tmp_path)
    app = create_app(make_environ(url, redis_server.url))
    response = app.test_client().get("/readyz")
    body = response.get_data(as_text=True)
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"] == {"ok": False, "error": "OperationalError"}
    assert checks["redis"]["ok"] is True
    assert "secret" not in body and str(tmp_path) not in body
