"""webhook-admin: the webhook sender of the SoftPOS platform."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from .config import Settings, load_settings
from .extensions import csrf, db, login_manager
from .secrets_box import SecretBox
from .sqlite_pragmas import apply_sqlite_pragmas

log = logging.getLogger(__name__)
PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_REQUEST_BYTES = 1024 * 1024


def create_app(
    environ: Mapping[str, str] | None = None,
    settings: Settings | None = None,
    *,
    web: bool = True,
) -> Flask:
    """Build the app from the environment (or from given settings, for tests).

    `web=False` is the delivery worker's app: settings, database and secrets only. No pages,
    CLI or migrations: their imports (Alembic, Mako, the views and forms) were ~0.25 s of a
    worker's ~0.9 s start, and a deploy restarts every worker."""
    app = Flask(
        __name__,
        template_folder=os.path.join(PROJECT_ROOT, "templates"),
        static_folder=os.path.join(PROJECT_ROOT, "static"),
        instance_path=os.path.join(PROJECT_ROOT, "var"),
    )
    if settings is None:
        settings = load_settings(environ, instance_path=app.instance_path)
    if settings.database_url.startswith("sqlite:///"):
        os.makedirs(
            os.path.dirname(settings.database_url[len("sqlite:///") :]) or ".", exist_ok=True
        )

    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        TESTING=settings.env == "testing",
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings.database_url),
        # Every route reads at most 1 MiB of body (413 beyond, before any form or JSON is
        # read, so before the CSRF check): a 200 MB form post had a worker read it all into
        # memory. The ingest API caps its own bodies lower (256 KiB) and answers JSON.
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        # Our forms are urlencoded (bounded by the above); these bound a multipart body,
        # which no page sends: per field held in memory, and fields in all.
        MAX_FORM_MEMORY_SIZE=256 * 1024,
        MAX_FORM_PARTS=1000,
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as the session: no 1-hour surprise
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.env == "production",
        REMEMBER_COOKIE_SECURE=settings.env == "production",
    )
    app.extensions["secret_box"] = (
        SecretBox(settings.encryption_keys)
        if settings.encryption_keys
        else SecretBox.for_development(settings.secret_key)
    )

    db.init_app(app)
    from . import models  # noqa: F401  (registers the tables with the metadata)

    if web:
        _add_web_parts(app)
    return app


def _add_web_parts(app: Flask) -> None:
    """Pages, forms, login, the `flask` CLI and its `db` migration commands."""
    from flask_migrate import Migrate

    from .cli import register_cli
    from .proxies import install_proxy_fix
    from .views import register_views

    # render_as_batch: SQLite can only ALTER tables by copying them; Alembic batch mode does.
    Migrate(render_as_batch=True, compare_type=True).init_app(
        app, db, directory=os.path.join(PROJECT_ROOT, "migrations")
    )
    install_proxy_fix(app, app.config["SETTINGS"].trusted_proxies)
    csrf.init_app(app)
    login_manager.init_app(app)
    register_views(app)
    register_cli(app)


def _engine_options(url: str) -> dict:
    # hide_parameters: a database error's message (logged, and in tracebacks) names the
    # statement but not its values, which can be payloads, header values or password hashes.
    if url.startswith("sqlite"):
        # Several processes share the file: wait for locks instead of failing at once.
        return {
            "hide_parameters": True,
            "connect_args": {"timeout": 30, "check_same_thread": False},
        }
    # No pool_pre_ping: it costs a round trip per checkout (three per delivery). A connection
    # that died with a database restart fails one statement, which SQLAlchemy detects as a
    # disconnect and answers by emptying the pool; ingest turns that one failure into a 503.
    # At most 20 connections per process: a delivery thread holds one only for its short
    # transactions (never while waiting on the network), so 64 threads share them well, and
    # a host of worker processes stays far below PostgreSQL's max_connections (100 default).
    return {"hide_parameters": True, "pool_size": 10, "max_overflow": 10, "pool_recycle": 1800}


# WAL, busy timeout, foreign keys and the bound on the -wal file (sqlite_pragmas.py).
event.listen(Engine, "connect", apply_sqlite_pragmas)
