"""Blueprints, one per area, registered on the app."""

from __future__ import annotations

from flask import Flask, redirect, url_for


def register_views(app: Flask) -> None:
    from ..auth import init_auth
    from ..security_headers import register_security_headers
    from . import (
        account,
        audit,
        auth,
        catalog,
        deliveries,
        event_docs,
        events,
        live,
        ops,
        tokens,
        users,
        webhook_actions,
        webhook_replay,
        webhooks,
    )
    from .api import bp as api_bp
    from .common import register_common
    from .management import register_management

    app.register_blueprint(api_bp)
    # Their routes live on the webhooks blueprint.
    assert webhook_actions.bp is webhooks.bp and webhook_replay.bp is webhooks.bp
    modules = (
        auth,
        account,
        webhooks,
        deliveries,
        live,
        events,
        catalog,
        event_docs,
        audit,
        users,
        ops,
        tokens,
    )
    for module in modules:
        app.register_blueprint(module.bp)
    init_auth(app)
    register_common(app)
    register_management(app)  # after register_common: it wraps the app's 404/405/413 pages
    register_security_headers(app)

    @app.get("/")
    def home():
        return redirect(url_for("webhooks.index"))

    @app.get("/favicon.ico")
    def favicon():
        """Browsers ask for it on every page, whatever the page's <link rel="icon"> says."""
        return app.send_static_file("favicon.svg"), 200, {"Content-Type": "image/svg+xml"}
