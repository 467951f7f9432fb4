"""The API tokens page: create (shown once), list with last use, revoke."""

from __future__ import annotations

import re

from sqlalchemy import select

from webhook_admin.extensions import db
from webhook_admin.models import ApiToken

from ..views.conftest import admin, fresh_login_per_request, viewer  # noqa: F401
from .conftest import Api


def test_page_creates_a_token_shown_once_and_revokes_it(admin, app):  # noqa: F811
    response = admin.post("/account/tokens", data={"name": "erp", "scope": "admin"})
    assert response.status_code == 201
    raw = re.search(r"whadm_[A-Za-z0-9_-]+", response.get_data(as_text=True)).group(0)
    assert response.headers["Cache-Control"] == "no-store"
    assert Api(app.test_client(), raw).get("/api/v1/endpoints").status_code == 200
    page = admin.get("/account/tokens").get_data(as_text=True)
    assert "erp" in page and raw not in page and raw[:12] in page
    token = db.session.scalar(select(ApiToken))
    assert admin.post(f"/account/tokens/{token.id}/revoke").status_code == 303
    assert Api(app.test_client(), raw).get("/api/v1/endpoints").status_code == 401


def test_viewer_gets_read_tokens_only_and_cannot_revoke_others(admin, viewer, app):  # noqa: F811
    assert viewer.post("/account/tokens", data={"name": "x", "scope": "admin"}).status_code == 422
    assert viewer.post("/account/tokens", data={"name": "x", "scope": "read"}).status_code == 201
    admin.post("/account/tokens", data={"name": "adm", "scope": "admin"})
    theirs = db.session.scalar(select(ApiToken).where(ApiToken.name == "adm"))
    assert viewer.post(f"/account/tokens/{theirs.id}/revoke").status_code == 403
    assert "<td>adm</td>" not in viewer.get("/account/tokens").get_data(as_text=True)
