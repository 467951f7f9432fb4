"""Account security in a real browser: MFA enrolment by QR code, login with a TOTP code
computed from the secret, a recovery code, a password change, revoking sessions, and an
invite's first password."""

from __future__ import annotations

import re
import time

import pyotp
from playwright.sync_api import expect

from tests.browser.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, shoot

NEW_PASSWORD = "another long passphrase here"


def new_tab(browser, base: str):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    tab.base = base
    return tab


def log_in(tab, email: str, password: str) -> None:
    tab.goto(tab.base + "/login")
    tab.get_by_label("Email").fill(email)
    tab.get_by_label("Password", exact=True).fill(password)
    tab.get_by_role("button", name="Log in").click()


def log_out(tab) -> None:
    tab.get_by_role("button", name="Log out", exact=True).click()
    expect(tab.get_by_role("heading", name="Log in")).to_be_visible()


def test_mfa_enrolment_then_login_with_totp_and_with_a_recovery_code(page):
    page.get_by_role("link", name=ADMIN_EMAIL).click()
    page.get_by_role("button", name="Set up two-factor authentication").click()
    qr = page.get_by_role("img", name="QR code for your authenticator app")
    expect(qr).to_be_visible()
    assert page.evaluate("document.querySelector('img.qr').naturalWidth") > 100
    secret = page.locator("#totp-secret").inner_text()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    shoot(page, "mfa-enrolment")
    page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on two-factor authentication").click()
    codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(codes) == 10
    log_out(page)

    log_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(page.get_by_role("heading", name="Two-factor code")).to_be_visible()
    # The next step's code: one step of drift is accepted, and the enrolment spent this one.
    page.get_by_label("Code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/webhooks")
    log_out(page)

    log_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.get_by_label("Code").fill(codes[0])
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url("**/webhooks")
    page.get_by_role("link", name=ADMIN_EMAIL).click()
    expect(page.get_by_text("9 unused recovery codes")).to_be_visible()
    log_out(page)

    log_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    page.get_by_label("Code").fill(codes[0])  # spent
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("not right")


def test_password_change_ends_the_other_browser_and_log_out_everywhere_ends_all(
    page, browser, live_server
):
    laptop = new_tab(browser, live_server)
    try:
        log_in(laptop, ADMIN_EMAIL, ADMIN_PASSWORD)
        laptop.wait_for_url("**/webhooks")

        page.get_by_role("link", name=ADMIN_EMAIL).click()
        page.get_by_role("link", name="Change password").click()
        page.get_by_label("Current password").fill(ADMIN_PASSWORD)
        page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        page.get_by_label("New password again").fill(NEW_PASSWORD)
        page.get_by_role("button", name="Change password").click()
        expect(page.get_by_text("Password changed.")).to_be_visible()

        laptop.reload()
        expect(laptop.get_by_role("heading", name="Log in")).to_be_visible()  # ended
        log_in(laptop, ADMIN_EMAIL, NEW_PASSWORD)
        laptop.wait_for_url("**/webhooks")

        page.get_by_role("link", name=ADMIN_EMAIL).click()
        page.get_by_role("button", name="Log out everywhere").click()
        expect(page.get_by_role("heading", name="Log in")).to_be_visible()
        laptop.get_by_role("link", name="Deliveries", exact=True).click()
        expect(laptop.get_by_role("heading", name="Log in")).to_be_visible()
    finally:
        laptop.context.close()


def test_an_invited_user_must_choose_a_password_at_first_login(page, browser, live_server):
    page.get_by_role("link", name="Users", exact=True).click()
    page.get_by_label("Email").fill("newcomer@acme.example")
    page.get_by_role("button", name="Invite user").click()
    one_time = page.locator("#invite-password").inner_text()
    newcomer = new_tab(browser, live_server)
    try:
        log_in(newcomer, "newcomer@acme.example", one_time)
        expect(newcomer.get_by_text("choose your own before going on")).to_be_visible()
        newcomer.goto(live_server + "/deliveries")
        expect(newcomer.get_by_role("heading", name="Change password")).to_be_visible()
        newcomer.get_by_label("Current password").fill(one_time)
        newcomer.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        newcomer.get_by_label("New password again").fill(NEW_PASSWORD)
        newcomer.get_by_role("button", name="Change password").click()
        newcomer.goto(live_server + "/deliveries")
        expect(newcomer.get_by_role("heading", name="Deliveries", exact=True)).to_be_visible()
    finally:
        newcomer.context.close()
