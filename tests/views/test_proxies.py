"""WEBHOOK_TRUSTED_PROXIES: the client's address (throttle, audit) and scheme behind a real
reverse proxy, and forged forwarding headers ignored from anyone else."""

from __future__ import annotations

import ipaddress
import threading

import pytest
from sqlalchemy import select
from werkzeug.serving import make_server
from werkzeug.test import Client

from tests.support.reverse_proxy import Browser, ReverseProxy
from tests.views.conftest import PASSWORD, csrf_token, make_user
from webhook_admin import create_app
from webhook_admin.config import ConfigError, load_settings
from webhook_admin.extensions import db
from webhook_admin.models import AuditEntry
from webhook_admin.proxies import TrustedProxyFix, trusted_hops

PROXY_ADDRESS = "127.0.0.10"


def echo_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['REMOTE_ADDR']} {environ['wsgi.url_scheme']}".encode()]


def seen(trusted, peer: str, forwarded_for: str | None = None, proto: str | None = None):
    headers = {}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    if proto is not None:
        headers["X-Forwarded-Proto"] = proto
    client = Client(TrustedProxyFix(echo_app, trusted))
    response = client.get("/", headers=headers, environ_base={"REMOTE_ADDR": peer})
    return response.get_data(as_text=True)


def networks(*cidrs: str):
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def test_hop_count_takes_the_address_the_last_proxy_appended():
    # The client wrote "6.6.6.6" itself; our one proxy appended the address it saw.
    assert seen(1, "10.0.0.2", "6.6.6.6, 203.0.113.7", "https") == "203.0.113.7 https"
    assert seen(2, "10.0.0.2", "6.6.6.6, 203.0.113.7, 10.0.0.3") == "203.0.113.7 http"


def test_networks_walk_past_trusted_proxies_to_the_first_outside_address():
    trusted = networks("10.0.0.0/8")
    assert seen(trusted, "10.0.0.2", "6.6.6.6, 203.0.113.7, 10.0.0.3", "https") == (
        "203.0.113.7 http"  # two proxies, one proto value: not believed for the second hop
    )
    assert seen(trusted, "10.0.0.2", "203.0.113.7", "https") == "203.0.113.7 https"
    assert trusted_hops("10.0.0.2", "10.9.9.9, 10.0.0.3", trusted) == 2  # all ours: leftmost


def test_forwarding_headers_from_an_untrusted_peer_are_ignored():
    assert seen(networks("10.0.0.0/8"), "198.51.100.4", "127.0.0.1", "https") == (
        "198.51.100.4 http"
    )


def test_the_setting_takes_a_hop_count_or_networks_and_names_a_bad_value():
    environ = {"APP_ENV": "testing"}
    assert load_settings(environ).trusted_proxies == 0
    assert load_settings(environ | {"WEBHOOK_TRUSTED_PROXIES": "2"}).trusted_proxies == 2
    parsed = load_settings(environ | {"WEBHOOK_TRUSTED_PROXIES": "10.0.0.0/8, ::1"})
    assert parsed.trusted_proxies == networks("10.0.0.0/8", "::1/128")
    with pytest.raises(ConfigError, match="WEBHOOK_TRUSTED_PROXIES.*'10.0.0.300'"):
        load_settings(environ | {"WEBHOOK_TRUSTED_PROXIES": "10.0.0.300"})


@pytest.fixture
def proxied_app(app, environ):
    """The app served on 127.0.0.1, trusting the proxy's address only, behind a real proxy."""
    behind = create_app(environ | {"WEBHOOK_TRUSTED_PROXIES": PROXY_ADDRESS})
    server = make_server("127.0.0.1", 0, behind, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with ReverseProxy(server.server_port, source=PROXY_ADDRESS) as proxy:
        proxy.app_port = server.server_port
        yield proxy
    server.shutdown()
    server.server_close()


def log_in(browser: Browser, email: str, password: str = PASSWORD, **headers) -> int:
    _, _, page = browser.request("GET", "/login")
    form = {"email": email, "password": password, "csrf_token": csrf_token(page)}
    # As a browser does: behind the TLS proxy the request is secure, and Flask-WTF then
    # checks that a form post comes from a page of this site.
    headers.setdefault("Referer", f"https://127.0.0.1:{browser.port}/login")
    status, _, _ = browser.request("POST", "/login", form, headers=headers)
    return status


def audit_rows(action: str) -> list[tuple[str, str]]:
    db.session.rollback()
    rows = db.session.execute(
        select(AuditEntry.actor, AuditEntry.remote_addr).where(AuditEntry.action == action)
    )
    return [tuple(row) for row in rows]


def test_one_attacker_behind_the_shared_proxy_does_not_lock_out_the_others(proxied_app):
    for email in ("alice@example.com", "bob@example.com"):
        make_user(email, "admin")
    attacker = Browser(proxied_app.port, "127.0.0.66")
    # Guesses at several accounts, claiming to be alice's address: the proxy appends the
    # attacker's own, and only that one is believed.
    for target in ("carol@example.com", "dave@example.com", "erin@example.com") * 3:
        log_in(attacker, target, "wrong password!!", **{"X-Forwarded-For": "127.0.0.2"})
    assert log_in(attacker, "mallory@example.com", "wrong password!!") == 429
    assert log_in(Browser(proxied_app.port, "127.0.0.2"), "alice@example.com") == 302
    assert log_in(Browser(proxied_app.port, "127.0.0.3"), "bob@example.com") == 302
    assert proxied_app.forwarded > 0
    failed = audit_rows("user.login_failed")
    assert {address for _, address in failed} == {"127.0.0.66"}
    assert sorted(audit_rows("user.login")) == [
        ("alice@example.com", "127.0.0.2"),
        ("bob@example.com", "127.0.0.3"),
    ]


def test_without_the_setting_everyone_behind_the_proxy_is_one_address(app, environ):
    """The old behaviour, kept when no proxy is trusted: the proxy's address for all (and a
    forged X-Forwarded-For believed for none)."""
    behind = create_app(environ)
    server = make_server("127.0.0.1", 0, behind, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with ReverseProxy(server.server_port, source=PROXY_ADDRESS) as proxy:
            log_in(Browser(proxy.port, "127.0.0.66"), "nobody@example.com", "wrong password!!")
    finally:
        server.shutdown()
        server.server_close()
    assert audit_rows("user.login_failed") == [("(unknown account)", PROXY_ADDRESS)]


def test_the_scheme_the_proxy_reports_is_believed_from_it_alone(app):
    """X-Forwarded-Proto through the trusted proxy makes the request secure; the same header
    sent straight to the app by a client does not."""
    server = make_server(
        "127.0.0.1", 0, TrustedProxyFix(echo_app, networks(PROXY_ADDRESS + "/32")), threaded=True
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with ReverseProxy(server.server_port, source=PROXY_ADDRESS, proto="https") as proxy:
            _, _, via_proxy = Browser(proxy.port, "127.0.0.5").request("GET", "/")
        direct = Browser(server.server_port, "127.0.0.5").request(
            "GET", "/", headers={"X-Forwarded-For": "127.0.0.9", "X-Forwarded-Proto": "https"}
        )[2]
    finally:
        server.shutdown()
        server.server_close()
    assert via_proxy == "127.0.0.5 https"
    assert direct == "127.0.0.5 http"
