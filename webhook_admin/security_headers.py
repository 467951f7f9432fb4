"""Security headers on every response: a strict CSP, no framing, no sniffing."""

from __future__ import annotations

from flask import Flask, Response, current_app

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"


def add_security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if current_app.config["SETTINGS"].env == "production":
        headers.setdefault("Strict-Transport-Security", HSTS)
    # Pages differ for htmx and plain requests: caches must keep them apart.
    response.vary.add("HX-Request")
    return response


def no_store(response: Response) -> Response:
    """For responses that show a secret: neither the browser nor htmx history may keep them."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def register_security_headers(app: Flask) -> None:
    app.after_request(add_security_headers)
