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


def test_webhooks_list_is_paged_with_a_keyset_load_more(viewer, app):
    from webhook_admin.extensions import db
    from webhook_admin.services.endpoints import EndpointInput, create_endpoint
    from webhook_admin.services.queries import PAGE_SIZE

    ids = []
    for n in range(PAGE_SIZE + 3):
        url = f"https://m{n}.example.com/h"
        ids.append(create_endpoint(EndpointInput(url, ["transaction.approved"]), "t")[0].id)
    db.session.commit()
    first = viewer.get("/webhooks").get_data(as_text=True)
    assert first.count('<tr id="endpoint-') == PAGE_SIZE
    assert "m0.example.com" not in first  # the oldest are on the next page
    cursor = f"2.{ids[3]}"  # healthy (rank 2), then by id
    assert f"cursor={cursor}" in first
    rest = viewer.get(f"/webhooks?cursor={cursor}", htmx=True).get_data(as_text=True)
    assert rest.count('<tr id="endpoint-') == 3
    assert "m0.example.com" in rest and "Load more" not in rest
