"""What every admin view shares: page or fragment, redirects after plain posts, errors."""

from __future__ import annotations

import io
import json
from datetime import datetime

from flask import Flask, flash, redirect, render_template, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from markupsafe import Markup

from ..clock import utcnow
from ..models import DeliveryStatus

LIVE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT, DeliveryStatus.RETRYING)
HTMX_CONFIG = json.dumps(
    {
        "allowEval": False,
        "allowScriptTags": False,
        "includeIndicatorStyles": False,
        "historyCacheSize": 0,
        "responseHandling": [
            {"code": "204", "swap": False},
            {"code": "[23]..", "swap": True},
            {"code": "422", "swap": True},
            {"code": "[45]..", "swap": False, "error": True},
        ],
    }
)


def is_htmx() -> bool:
    """An htmx request wanting a fragment (a history restore wants the whole page)."""
    headers = request.headers
    return (
        headers.get("HX-Request") == "true"
        and not headers.get("HX-Boosted")
        and not headers.get("HX-History-Restore-Request")
    )


def render(page_template: str, fragment_template: str, status: int = 200, /, **context):
    """The page for a normal request, the fragment alone for htmx (the page includes it)."""
    template = fragment_template if is_htmx() else page_template
    return render_template(template, **context), status


def done(message: str, fallback: str, fragment: str | None = None, **context):
    """After a change: htmx gets the fragment; a plain form post gets a flash and a redirect."""
    if is_htmx() and fragment is not None:
        return render_template(fragment, **context)
    if is_htmx():
        return ""
    flash(message)
    return redirect(fallback, code=303)


def ago(value: datetime | None) -> str:
    if value is None:
        return "never"
    seconds = int((utcnow() - value).total_seconds())
    if seconds < 60:
        return f"{max(seconds, 0)} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


def since(value: datetime | None) -> str:
    """How long ago, without "ago": "12 min", "3 h", "2 d"."""
    return ago(value).removesuffix(" ago")


def pretty_body(text: str | None) -> str:
    """JSON pretty-printed, anything else as it came (templates escape it)."""
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, TypeError, RecursionError):  # a receiver's body nested too deep to parse
        return text


def pretty_json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def audit_diff(before: dict | None, after: dict | None) -> list[tuple[str, str, str]]:
    """(key, before, after) for each key whose value changed, in key order; a side that
    did not exist shows as ''. Values are compact JSON."""
    before, after = before or {}, after or {}

    def show(side: dict, key: str) -> str:
        if key not in side:
            return ""
        return json.dumps(side[key], ensure_ascii=False, sort_keys=True, default=str)

    keys = sorted(set(before) | set(after))
    return [(k, show(before, k), show(after, k)) for k in keys if before.get(k) != after.get(k)]


def duration(seconds: int | None) -> str:
    """A deadline in the largest whole unit: 900 -> '15 min', 259200 -> '3 d'."""
    if not seconds:
        return ""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or url


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def render_error(status: int, title: str, message: str):
    if is_htmx():
        return Markup('<p class="error-text" role="alert">{}</p>').format(message), status
    return render_template("errors/error.html", title=title, message=message), status


class ChunkedBodyLimit:
    """WSGI wrapper: a chunked body (no Content-Length) is read here, one byte past
    MAX_CONTENT_LENGTH at most, and handed on with its length, so the limit answers 413
    through the error pages below. Werkzeug stops reading such a body at the limit and
    hands on what it read as if it were whole: a cut-off form, refused with a 400."""

    def __init__(self, wsgi_app, limit: int):
        self.wsgi_app, self.limit = wsgi_app, limit

    def __call__(self, environ, start_response):
        if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
            body = environ["wsgi.input"].read(self.limit + 1)
            # Now a plain body of known length (werkzeug ignores a length with chunked).
            del environ["HTTP_TRANSFER_ENCODING"]
            environ.update({"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
        return self.wsgi_app(environ, start_response)


def register_common(app: Flask) -> None:
    app.wsgi_app = ChunkedBodyLimit(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])
    app.jinja_env.filters.update(
        ago=ago,
        since=since,
        pretty_body=pretty_body,
        pretty_json=pretty_json,
        when=when,
        duration=duration,
        host=host,
    )
    app.jinja_env.globals.update(
        htmx_config=HTMX_CONFIG, LIVE_STATUSES=LIVE_STATUSES, audit_diff=audit_diff, now=utcnow
    )

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        if is_htmx() and not current_user.is_authenticated:  # the session expired: log in, back
            from ..auth import unauthorized

            return unauthorized()
        return render_error(
            400,
            "Session expired",
            "The form was missing its security token. Reload the page and try again.",
        )

    @app.errorhandler(403)
    def forbidden(exc):
        return render_error(403, "Not allowed", "Your role cannot make this change.")

    @app.errorhandler(413)
    def too_large(exc):
        # MAX_CONTENT_LENGTH (or a multipart form limit) refused the body before it was read.
        limit = f"{app.config['MAX_CONTENT_LENGTH'] / 2**20:g} MiB"
        if request.path.startswith("/api/"):
            return {"error": f"body is larger than {limit}"}, 413
        return render_error(
            413, "Request too large", f"This request sent more than the {limit} we accept."
        )

    @app.errorhandler(404)
    def not_found(exc):
        if request.path.startswith("/api/"):
            return {"error": "not found"}, 404
        return render_error(404, "Not found", "There is nothing at this address.")
