"""API clients with real tokens (created through the service, as the UI and CLI do)."""

from __future__ import annotations

import pytest

from webhook_admin.extensions import db
from webhook_admin.models import User
from webhook_admin.services.api_tokens import create_token
from webhook_admin.services.endpoints import EndpointInput, create_endpoint
from webhook_admin.services.users import create_user

PASSWORD = "correct horse battery staple"


class Api:
    """The test client with a bearer token; JSON in and out."""

    def __init__(self, client, token: str | None):
        self.client, self.token = client, token

    def headers(self, extra=None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return headers | (extra or {})

    def get(self, url, **kwargs):
        return self.client.get(url, headers=self.headers(kwargs.pop("headers", None)), **kwargs)

    def post(self, url, json=None, **kwargs):
        return self.client.post(
            url, json=json, headers=self.headers(kwargs.pop("headers", None)), **kwargs
        )

    def patch(self, url, json=None, **kwargs):
        return self.client.patch(
            url, json=json, headers=self.headers(kwargs.pop("headers", None)), **kwargs
        )

    def delete(self, url, **kwargs):
        return self.client.delete(url, headers=self.headers(kwargs.pop("headers", None)), **kwargs)


def user(email: str, role: str) -> User:
    found = db.session.query(User).filter_by(email=email).one_or_none()
    if found is None:
        found, _ = create_user(email, role, PASSWORD, "test")
        db.session.commit()
    return found


def token_for(email: str, role: str, scope: str, name: str = "test") -> tuple[str, int]:
    token, raw = create_token(user(email, role), name, scope, "test")
    db.session.commit()
    return raw, token.id


@pytest.fixture
def admin_api(app):
    raw, _ = token_for("admin@example.com", "admin", "admin", "ci")
    return Api(app.test_client(), raw)


@pytest.fixture
def read_api(app):
    raw, _ = token_for("admin@example.com", "admin", "read", "dashboard")
    return Api(app.test_client(), raw)


@pytest.fixture
def viewer_api(app):
    """An admin-scope token whose user is a viewer now (demoted after it was made)."""
    raw, _ = token_for("viewer@example.com", "admin", "admin", "old")
    found = user("viewer@example.com", "admin")
    found.role = "viewer"
    db.session.commit()
    return Api(app.test_client(), raw)


@pytest.fixture
def anonymous_api(app):
    return Api(app.test_client(), None)


@pytest.fixture
def endpoint(app):
    created, secret = create_endpoint(
        EndpointInput(
            "http://127.0.0.1:9/hook", ["transaction.approved"], "Transactions", description="ERP"
        ),
        "test",
    )
    db.session.commit()
    created.test_secret = secret
    return created
