"""URL rules, the address classifier and resolve-and-check. No network traffic at all:
addresses are classified directly and DNS is either stubbed or asked to parse numerics."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from webhook_admin.shared.destination import (
    MAX_URL_LENGTH,
    DestinationRejected,
    DnsError,
    check_url,
    denied_reason,
    resolve_checked,
)


def numeric_only(host, port, *args, **kwargs):
    """socket.getaddrinfo restricted to numeric hosts: parses locally, never asks DNS."""
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)


def answers(*ips: str):
    """A getaddrinfo stand-in returning `ips` for any name, recording each call."""

    def resolver(host, port, *args, **kwargs):
        resolver.calls.append(host)
        out = []
        for ip in ips:
            family = socket.AF_INET6 if ":" in ip else socket.AF_INET
            sockaddr = (ip, port, 0, 0) if family == socket.AF_INET6 else (ip, port)
            out.append((family, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    resolver.calls = []
    return resolver


# --- check_url: rejected ----------------------------------------------------------------------

REJECTED_URLS = [
    # scheme
    ("ftp://example.com/hook", "scheme"),
    ("file:///etc/passwd", "scheme"),
    ("gopher://example.com:70/_GET", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("http://example.com/hook", "scheme"),  # plain http only with allow_private
    ("//example.com/hook", "scheme"),
    # host / userinfo
    ("https:///hook", "no host"),
    ("https://user:pass@example.com/hook", "credentials"),
    ("https://example.com@127.0.0.1/hook", "credentials"),
    ("https://@example.com/hook", "credentials"),
    # whitespace, control characters, backslashes
    ("https://example.com /hook", "whitespace"),
    ("https://example.com/ho\tok", "whitespace"),
    ("https://example.com/\r\nX-Injected: 1", "whitespace"),
    ("https://example.com\x00.evil/", "control"),
    ("\x20https://example.com/", "whitespace"),
    ("https://example.com\u00a0/", "whitespace"),
    ("https://example.com\\@127.0.0.1/", "backslash"),
    # length
    ("https://example.com/" + "a" * MAX_URL_LENGTH, "longer than"),
    # literal denied addresses
    ("https://127.0.0.1/hook", "loopback address 127.0.0.1"),
    ("https://10.1.2.3/hook", "private address"),
    ("https://172.16.0.1/hook", "private address"),
    ("https://192.168.1.1/hook", "private address"),
    ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
    ("https://100.64.0.1/hook", "CGNAT"),
    ("https://0.0.0.0/hook", "0.0.0.0"),
    ("https://255.255.255.255/hook", "broadcast"),
    ("https://224.0.0.1/hook", "multicast"),
    ("https://192.0.2.10/hook", "documentation"),
    ("https://198.18.0.1/hook", "benchmarking"),
    ("https://[::1]/hook", "loopback address ::1"),
    ("https://[::]/hook", "unspecified"),
    ("https://[::ffff:127.0.0.1]/hook", "embeds loopback address 127.0.0.1"),
    ("https://[64:ff9b::a9fe:a9fe]/hook", "embeds link-local address 169.254.169.254"),
    ("https://[2002:a9fe:a9fe::]/hook", "embeds link-local address 169.254.169.254"),
    ("https://[fd00:ec2::254]/hook", "unique-local"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://[fe80::1%25eth0]/hook", "ambiguous"),
    ("https://[2001:db8::1]/hook", "documentation"),
    # numeric spellings of 127.0.0.1 that resolvers accept
    ("https://2130706433/hook", "127.0.0.1"),
    ("https://0x7f000001/hook", "127.0.0.1"),
    ("https://127.1/hook", "127.0.0.1"),
    ("https://0177.0.0.1/hook", "127.0.0.1"),
    ("https://0x7f.0.0.1/hook", "127.0.0.1"),
    ("https://127.0.0.1./hook", "loopback"),
    ("https://999.0.0.1/hook", "not a valid IPv4"),
    # names
    ("https://localhost/hook", "loopback name"),
    ("https://LOCALHOST:8443/hook", "loopback name"),
    ("https://api.localhost/hook", "loopback name"),
    ("https://localhost./hook", "loopback name"),
    ("https://exa%6dple.com/hook", "ambiguous"),
    ("https://exa$mple.com/hook", "characters not allowed"),
    ("https://example.com:0/hook", "port"),
    ("https://example.com:99999/hook", "malformed"),
    ("https://127。0。0。1/hook", "not a valid host"),
]


@pytest.mark.parametrize(("url", "fragment"), REJECTED_URLS)
def test_check_url_rejects_hostile_destination(url, fragment):
    with pytest.raises(DestinationRejected) as info:
        check_url(url, allow_private=False)
    assert fragment.lower() in str(info.value).lower()


def test_check_url_message_does_not_echo_the_url_query():
    with pytest.raises(DestinationRejected) as info:
        check_url("https://127.0.0.1/hook?token=s3cr3t-value", allow_private=False)
    assert "s3cr3t-value" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://2130706433/hook",
        "https://127.1/hook",
        "gopher://127.0.0.1/",
        "https://u:p@127.0.0.1/",
        "https://127.0.0.1/ x",
    ],
)
def test_check_url_keeps_structural_rules_when_private_allowed(url):
    with pytest.raises(DestinationRejected):
        check_url(url, allow_private=True)


# --- check_url: accepted ----------------------------------------------------------------------

ACCEPTED_PUBLIC = [
    "https://example.com/hook",
    "https://hooks.example.com:8443/a/b?x=1&y=2#frag",
    "https://93.184.216.34/hook",
    "https://[2606:4700:4700::1111]/hook",
    "https://bücher.example/hook",
    "https://EXAMPLE.com/hook",
    "https://a_b.example.com/hook",
    "https://example.com/" + "a" * (MAX_URL_LENGTH - len("https://example.com/")),
]


@pytest.mark.parametrize("url", ACCEPTED_PUBLIC)
def test_check_url_accepts_public_https_destination(url):
    check_url(url, allow_private=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://localhost/hook",
        "https://10.0.0.5/hook",
        "http://[::1]:8080/hook",
    ],
)
def test_check_url_accepts_private_and_http_when_private_allowed(url):
    check_url(url, allow_private=True)


# --- denied_reason ----------------------------------------------------------------------------

DENIED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.0.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.0.1", "private"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.1.1", "link-local"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.255", "CGNAT"),
    ("0.0.0.0", "this network"),
    ("0.1.2.3", "this network"),
    ("255.255.255.255", "broadcast"),
    ("224.0.0.251", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("192.0.0.8", "IETF"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.255", "benchmarking"),
    ("192.88.99.1", "6to4 relay"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("::ffff:127.0.0.1", "embeds loopback"),
    ("::ffff:10.0.0.1", "embeds private"),
    ("::ffff:169.254.169.254", "embeds link-local"),
    ("64:ff9b::a9fe:a9fe", "NAT64"),
    ("64:ff9b::7f00:1", "embeds loopback"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("2002:a9fe:a9fe::", "6to4"),
    ("2002:7f00:1::1", "embeds loopback"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "Teredo"),  # client 10.0.0.1
    ("fd00:ec2::254", "cloud metadata"),
    ("fc00::1", "unique-local"),
    ("fdff:ffff::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:2::1", "benchmarking"),
    ("100::1", "discard"),
    ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible form
    ("4000::1", "reserved"),
]


@pytest.mark.parametrize(("text", "fragment"), DENIED)
def test_denied_reason_names_the_range(text, fragment):
    reason = denied_reason(ipaddress.ip_address(text))
    assert reason is not None
    assert fragment.lower() in reason.lower()


@pytest.mark.parametrize(
    "text",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "100.63.255.255",  # just below CGNAT
        "100.128.0.0",  # just above CGNAT
        "172.32.0.1",  # just above 172.16/12
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:93.184.216.34",  # mapped public
        "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
        "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    ],
)
def test_denied_reason_allows_public_address(text):
    assert denied_reason(ipaddress.ip_address(text)) is None


def test_denied_reason_mentions_the_embedded_address():
    reason = denied_reason(ipaddress.ip_address("::ffff:169.254.169.254"))
    assert "169.254.169.254" in reason


# --- resolve_checked --------------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["2130706433", "0x7f000001", "127.1", "0177.0.0.1"])
def test_resolve_checked_rejects_numeric_spellings_of_loopback(spelling):
    with pytest.raises(DestinationRejected) as info:
        resolve_checked(spelling, 443, allow_private=False, resolver=numeric_only)
    assert "127.0.0.1" in str(info.value)


@pytest.mark.parametrize(
    "ip", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "fd00:ec2::254", "::ffff:127.0.0.1"]
)
def test_resolve_checked_rejects_name_resolving_to_denied_address(ip):
    with pytest.raises(DestinationRejected) as info:
        resolve_checked("hooks.test", 443, allow_private=False, resolver=answers(ip))
    assert "hooks.test" in str(info.value)


def test_resolve_checked_rejects_when_any_address_is_denied():
    resolver = answers("93.184.216.34", "10.0.0.1")
    with pytest.raises(DestinationRejected) as info:
        resolve_checked("hooks.test", 443, allow_private=False, resolver=resolver)
    assert "10.0.0.1" in str(info.value)


def test_resolve_checked_returns_every_address_once_in_order():
    resolver = answers("93.184.216.34", "2606:4700:4700::1111", "93.184.216.34")
    found = resolve_checked("hooks.test", 443, allow_private=False, resolver=resolver)
    assert found == ["93.184.216.34", "2606:4700:4700::1111"]


def test_resolve_checked_resolves_exactly_once():
    resolver = answers("93.184.216.34")
    resolve_checked("hooks.test", 443, allow_private=False, resolver=resolver)
    assert resolver.calls == ["hooks.test"]


def test_resolve_checked_allows_loopback_when_private_allowed():
    found = resolve_checked("hooks.test", 80, allow_private=True, resolver=answers("127.0.0.1"))
    assert found == ["127.0.0.1"]


def test_resolve_checked_strips_ipv6_brackets():
    found = resolve_checked(
        "[2606:4700:4700::1111]", 443, allow_private=False, resolver=numeric_only
    )
    assert found == ["2606:4700:4700::1111"]


def test_resolve_checked_raises_dns_error_when_name_does_not_resolve():
    def failing(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(DnsError) as info:
        resolve_checked("nowhere.test", 443, allow_private=False, resolver=failing)
    assert isinstance(info.value, OSError)


def test_resolve_checked_raises_dns_error_on_empty_answer():
    with pytest.raises(DnsError):
        resolve_checked("empty.test", 443, allow_private=False, resolver=answers())
