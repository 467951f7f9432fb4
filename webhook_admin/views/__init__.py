"""Blueprints, one per area, registered on the app."""

from __future__ import annotations

from flask import Flask


def register_views(app: Flask) -> None:
    from .api import bp as api_bp

    app.register_blueprint(api_bp)
