"""Every page renders for a logged-in user; htmx gets fragments, plain requests get pages."""

from __future__ import annotations

import pytest

PAGES = ["/webhooks", "/deliveries", "/events", "/catalog", "/audit"]


@pytest.mark.parametrize("path", PAGES)
def test_page_renders_full_document_for_plain_request(viewer, path):
    response = viewer.get(path)
    assert response.status_code == 200
    assert "<html" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/webhooks", "/deliveries", "/events", "/audit"])
def test_htmx_request_gets_fragment_without_html_document(viewer, path):
    response = viewer.get(path, htmx=True)
    assert response.status_code == 200
    assert "<html" not in response.get_data(as_text=True)
    assert "HX-Request" in response.headers["Vary"]


def test_history_restore_gets_the_whole_page(viewer):
    response = viewer.get("/webhooks", htmx=True, headers={"HX-History-Restore-Request": "true"})
    assert "<html" in response.get_data(as_text=True)


def test_root_redirects_to_webhooks(viewer):
    response = viewer.get("/")
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/webhooks")


def test_webhooks_page_has_title_and_endpoint_row(viewer, endpoint):
    html = viewer.get("/webhooks").get_data(as_text=True)
    assert "Webhook Management" in html
    assert f'id="endpoint-{endpoint.id}"' in html
    assert "http://127.0.0.1:9/hook" in html


def test_endpoint_page_renders_chart_and_masked_secret(admin, endpoint):
    response = admin.get(f"/webhooks/{endpoint.id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "<svg" in html and "whsec_••••" in html
    assert endpoint.test_secret not in html


def test_users_page_renders_for_admin(admin):
    assert admin.get("/users").status_code == 200
