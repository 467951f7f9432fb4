"""Request bodies are bounded before they are read: 413 for every route, JSON for the API."""

from __future__ import annotations

import io
import json

from sqlalchemy import func, select

from tests.conftest import signed_headers, valid_data
from webhook_admin.extensions import db
from webhook_admin.models import Event

MIB = 1024 * 1024


def chunked(body: bytes) -> dict:
    """A body with no Content-Length, as a server passes on a chunked upload: it says it
    ends the stream itself (gunicorn sets wsgi.input_terminated)."""
    return {
        "input_stream": io.BytesIO(body),
        "environ_overrides": {"wsgi.input_terminated": True},
        "headers": {"Transfer-Encoding": "chunked"},
    }


def assert_refused_page(response) -> None:
    assert response.status_code == 413
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "Request too large" in page and "more than the 1 MiB we accept" in page


def ingest(client, body: bytes, chunked_upload: bool = False):
    if not chunked_upload:
        return client.post("/api/v1/events", data=body, headers=signed_headers(body))
    upload = chunked(body)
    upload["headers"] |= signed_headers(body)
    return client.post("/api/v1/events", **upload)


def event_body(size: int) -> bytes:
    return json.dumps({"type": "transaction.approved", "data": valid_data(x="a" * size)}).encode()


def count_events() -> int:
    return db.session.scalar(select(func.count()).select_from(Event))


def test_a_2_mib_login_form_is_refused_with_413_before_its_csrf_token_is_checked(client):
    """It used to be read whole into memory (200 MB grew a worker by 600 MiB), then a 400."""
    body = b"email=a%40example.com&password=" + b"x" * (2 * MIB)
    form = "application/x-www-form-urlencoded"
    assert_refused_page(client.post("/login", data=body, content_type=form))
    small = client.post("/login", data=body[: 64 * 1024], content_type=form)
    assert small.status_code == 400  # read, and refused for its missing CSRF token


def test_a_2_mib_json_login_is_refused_with_413(client):
    """Flask-WTF reads a JSON body as the form's data: the same limit applies."""
    body = json.dumps({"email": "a@example.com", "password": "x" * (2 * MIB)}).encode()
    assert_refused_page(client.post("/login", data=body, content_type="application/json"))


def test_an_htmx_request_over_the_limit_gets_the_error_as_a_fragment(client):
    response = client.post(
        "/login",
        data=b"x" * (2 * MIB),
        content_type="application/x-www-form-urlencoded",
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 413
    assert response.get_data(as_text=True) == (
        '<p class="error-text" role="alert">This request sent more than the 1 MiB we accept.</p>'
    )


def test_pages_answer_the_1_mib_limit_with_html_and_ingest_keeps_its_json_413(client):
    assert_refused_page(client.post("/login", data={"password": "x" * (2 * MIB)}))
    for size in (300 * 1024, 2 * MIB):  # over ingest's own cap; over the app's too
        body = event_body(size)
        response = ingest(client, body)
        assert response.status_code == 413
        assert response.get_json() == {"error": "body is larger than 256 KiB"}
    assert count_events() == 0


def test_chunked_bodies_without_content_length_are_bounded_too(client):
    form = b"email=a%40example.com&password=" + b"x" * (2 * MIB)
    response = client.post(
        "/login", content_type="application/x-www-form-urlencoded", **chunked(form)
    )
    assert_refused_page(response)
    too_large = event_body(300 * 1024)
    response = ingest(client, too_large, chunked_upload=True)
    assert response.status_code == 413
    assert response.get_json() == {"error": "body is larger than 256 KiB"}
    small = event_body(1000)
    assert ingest(client, small, chunked_upload=True).status_code == 202
    assert count_events() == 1
