"""A real app server, a real worker process and a real receiver, driven by headless Chromium.

Chromium must be installed at /usr/bin/chromium (`apt-get install -y chromium`); these tests
fail (never skip) without it. Playwright's own browser download is not used."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.receiver import Receiver, Reply
from webhook_admin.extensions import db
from webhook_admin.services.users import create_user

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ROOT = Path(__file__).resolve().parents[2]
# `UPDATE_SCREENSHOTS=1 make test` refreshes the README's pictures; otherwise they go to a
# scratch folder so that a test run never changes tracked files.
SCREENSHOTS = (
    ROOT / "docs" / "screenshots"
    if os.environ.get("UPDATE_SCREENSHOTS")
    else Path(tempfile.gettempdir()) / "webhook-admin-screenshots"
)
ADMIN_EMAIL, ADMIN_PASSWORD = "ops@acme.example", "correct horse battery staple"


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"{CHROMIUM} is missing: install it with `apt-get install -y chromium` "
            "(browser tests never skip)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def worker(environ, app):
    """`python worker.py` in a subprocess against the same database and Redis."""
    env = os.environ | environ | {"PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py"), "--threads", "2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    if process.poll() is not None:
        pytest.fail(f"worker.py exited at start: {process.stderr.read().decode()[-2000:]}")
    yield process
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    process.stderr.close()


class Switchable:
    """A receiver reply the test can change: 200 by default, 500 to make deliveries fail."""

    def __init__(self):
        self.status = 200

    def __call__(self, request):
        return Reply(
            self.status,
            b'{"ok": true}' if self.status < 300 else b"<h1>boom</h1>",
            {"content-type": "application/json" if self.status < 300 else "text/html"},
        )


@pytest.fixture
def scripted_receiver():
    reply = Switchable()
    with Receiver(reply) as receiver:
        receiver.reply = reply
        yield receiver


@pytest.fixture
def admin_user(app):
    create_user(ADMIN_EMAIL, "admin", ADMIN_PASSWORD, "test")
    db.session.commit()


@pytest.fixture
def page(browser, live_server, admin_user):
    """A logged-in admin tab; fails the test on any CSP violation or JavaScript error."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("console", lambda m: "Content Security Policy" in m.text and problems.append(m.text))
    tab.on("pageerror", lambda e: problems.append(str(e)))
    tab.set_default_timeout(15_000)
    tab.goto(live_server + "/webhooks")
    tab.get_by_label("Email").fill(ADMIN_EMAIL)
    tab.get_by_label("Password").fill(ADMIN_PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url("**/webhooks")
    tab.base = live_server
    yield tab
    context.close()
    assert not problems, problems


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
