"""/api/docs in Chromium: Swagger UI renders the management API under the strict CSP."""

from __future__ import annotations


def test_reference_page_renders_every_area_without_csp_violations(browser, live_server, app):
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{live_server}/api/docs")
    page.wait_for_selector(".opblock-tag", timeout=15000)
    tags = page.locator(".opblock-tag").all_inner_texts()
    assert {"endpoints", "deliveries", "events", "catalog"} <= {t.split()[0] for t in tags}
    assert page.locator(".opblock").count() >= 17
    assert not [p for p in problems if "Content Security Policy" in p or "Refused" in p], problems
    page.close()
