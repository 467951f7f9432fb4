"""Where webhooks may be sent: URL rules, an address classifier, and resolve-and-check.

Three layers, used together (see docs/security.md, "Outbound destinations"):

* `check_url` runs when an endpoint URL is saved and again before every send. It enforces the
  static rules that need no DNS: scheme, host present, no credentials, no odd characters,
  length, and (unless private networks are allowed) no denied literal address or `localhost`.
* `denied_reason` classifies one IP address: None for an ordinary public address, otherwise a
  short reason naming the range. It uses explicit range tables, not `ipaddress.is_global`,
  and looks inside IPv6 forms that embed an IPv4 address.
* `resolve_checked` resolves a host name once and checks every address it returned. The HTTP
  sender connects to one of exactly these addresses, so a second, different DNS answer
  (DNS rebinding) is never used.

Messages never contain the URL itself (its path or query may carry a secret token), only the
host and the rule that was broken.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

from urllib3.util import parse_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[..., list]

MAX_URL_LENGTH = 2048


class DestinationRejected(ValueError):
    """The destination breaks a rule; str(exc) names the rule (never the full URL)."""


class DnsError(OSError):
    """The host name could not be resolved to any address."""


def _nets(*specs: tuple[str, str]) -> tuple[tuple[ipaddress._BaseNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), label) for cidr, label in specs)


# Checked in order; the first match names the reason. Broadcast precedes 240/4 on purpose.
_DENIED_V4 = _nets(
    ("255.255.255.255/32", "broadcast address"),
    ("0.0.0.0/8", "'this network' address (0.0.0.0/8)"),
    ("10.0.0.0/8", "private address (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (CGNAT, 100.64.0.0/10)"),
    ("127.0.0.0/8", "loopback address"),
    ("169.254.0.0/16", "link-local address"),
    ("172.16.0.0/12", "private address (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignment address (192.0.0.0/24)"),
    ("192.0.2.0/24", "documentation address (TEST-NET-1)"),
    ("192.88.99.0/24", "6to4 relay anycast address"),
    ("192.168.0.0/16", "private address (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking address (198.18.0.0/15)"),
    ("198.51.100.0/24", "documentation address (TEST-NET-2)"),
    ("203.0.113.0/24", "documentation address (TEST-NET-3)"),
    ("224.0.0.0/4", "multicast address"),
    ("240.0.0.0/4", "reserved address (240.0.0.0/4)"),
)

# IPv6 ranges denied outright. Anything outside 2000::/3 (global unicast) is denied as well,
# after the IPv4-embedding forms below have been looked into.
_DENIED_V6 = _nets(
    ("::/128", "unspecified address"),
    ("::1/128", "loopback address"),
    ("64:ff9b:1::/48", "local-use NAT64 address"),
    ("100::/64", "discard-only address"),
    ("2001:db8::/32", "documentation address"),
    ("3fff::/20", "documentation address"),
    ("2001:2::/48", "benchmarking address"),
    ("2001::/23", "IETF protocol assignment address (2001::/23)"),
    ("5f00::/16", "segment routing (SRv6) address"),
    ("fc00::/7", "unique-local address (fc00::/7)"),
    ("fe80::/10", "link-local address"),
    ("fec0::/10", "site-local address"),
    ("ff00::/8", "multicast address"),
)

_V6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
_TEREDO = ipaddress.ip_network("2001::/32")

_METADATA = {
    ipaddress.ip_address("169.254.169.254"): "cloud metadata service",
    ipaddress.ip_address("fd00:ec2::254"): "cloud metadata service",
    ipaddress.ip_address("100.100.100.200"): "cloud metadata service",
}


def _label(address: IPAddress, label: str) -> str:
    note = _METADATA.get(address)
    return f"{label} {address}" + (f" ({note})" if note else "")


def _embedded_v4(address: ipaddress.IPv6Address) -> tuple[str, list[ipaddress.IPv4Address]] | None:
    """IPv4 addresses carried inside an IPv6 address, with the name of the form."""
    if address in _MAPPED:
        return "IPv4-mapped", [address.ipv4_mapped]
    if address in _NAT64:
        return "NAT64", [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address in _SIX_TO_FOUR:
        return "6to4", [address.sixtofour]
    if address in _TEREDO:
        server, client = address.teredo
        return "Teredo", [client, server]
    return None


def denied_reason(address: IPAddress) -> str | None:
    """None if `address` is an ordinary public unicast address, else why it is denied."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(str(address).split("%", 1)[0])
    if isinstance(address, ipaddress.IPv4Address):
        for network, label in _DENIED_V4:
            if address in network:
                return _label(address, label)
        # Safety net for anything the table misses (the table is the authority).
        if address.is_private or address.is_reserved or not address.is_global:
            return _label(address, "reserved address")
        return None

    embedded = _embedded_v4(address)
    if embedded is not None:
        form, inner = embedded
        for v4 in inner:
            reason = denied_reason(v4)
            if reason is not None:
                return f"{form} IPv6 address {address} embeds {reason}"
        return None
    for network, label in _DENIED_V6:
        if address in network:
            return _label(address, label)
    if address not in _V6_GLOBAL_UNICAST:
        return _label(address, "reserved IPv6 address (outside 2000::/3)")
    return None


# --- URL rules ------------------------------------------------------------------------------

_BAD_CHAR = re.compile(r"[\x00-\x20\x7f-\x9f\\]")
_HOST_CHARS = re.compile(r"^[a-z0-9._-]+$")
_NUMERIC_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")
_LOCALHOST_NAMES = ("localhost", "localhost.localdomain")


def _parse_ipv4_number(part: str) -> int:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        if not set(part) <= set("01234567"):
            raise ValueError(part)
        return int(part, 8)
    return int(part, 10)


def _loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """Decode the legacy inet_aton spellings (127.1, 0x7f000001, 0177.0.0.1, 2130706433).

    Returns None when the host is not numeric at all. Raises ValueError for numeric-looking
    hosts that are no valid address (e.g. 999.1.1.1).
    """
    parts = host.rstrip(".").split(".")
    if not parts or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    if len(parts) > 4:
        raise ValueError(host)
    numbers = [_parse_ipv4_number(p) for p in parts]
    value = 0
    for number in numbers[:-1]:
        if number > 255:
            raise ValueError(host)
        value = value * 256 + number
    last_bits = 8 * (5 - len(numbers))
    if numbers[-1] >= 1 << last_bits:
        raise ValueError(host)
    value = (value << last_bits) | numbers[-1]
    return ipaddress.IPv4Address(value)


def check_url(url: str, *, allow_private: bool) -> None:
    """Static checks on a webhook URL (no DNS). Raise DestinationRejected naming the rule."""
    if not isinstance(url, str) or not url:
        raise DestinationRejected("URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise DestinationRejected(f"URL is longer than {MAX_URL_LENGTH} characters")
    if _BAD_CHAR.search(url) or any(ch.isspace() for ch in url):
        raise DestinationRejected(
            "URL must not contain whitespace, control characters or backslashes"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise DestinationRejected("URL is malformed (bad port or brackets)") from None

    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        shown = parts.scheme[:20] or "(none)"
        raise DestinationRejected(
            f"URL scheme {shown!r} is not allowed; use {' or '.join(allowed_schemes)}"
        )
    if "@" in parts.netloc:
        raise DestinationRejected("URL must not contain credentials (user:password@)")
    host = parts.hostname or ""
    if not host:
        raise DestinationRejected("URL has no host")
    if port == 0:
        raise DestinationRejected("URL port must be between 1 and 65535")

    # The sender (requests/urllib3) parses URLs with its own parser; refuse any URL where the
    # two parsers disagree about the host, so what we check is what we connect to.
    # Non-ASCII hosts are compared in the IDNA (xn--) form both parsers end up using.
    try:
        other = (parse_url(url).host or "").lower()
    except ValueError:
        raise DestinationRejected("URL host is malformed or not a valid host name") from None
    if host.isascii() and other.strip("[]") != host:
        raise DestinationRejected("URL host is ambiguous")
    if not host.isascii():
        if not other.isascii() or not other:
            raise DestinationRejected("URL host is not a valid internationalized host name")
        host = other

    literal: IPAddress | None = None
    if ":" in host:  # only an IPv6 literal can hold a colon after urlsplit
        if "%" in host:
            raise DestinationRejected("IPv6 zone identifiers are not allowed in URLs")
        try:
            literal = ipaddress.IPv6Address(host)
        except ValueError:
            raise DestinationRejected(f"URL host [{host}] is not a valid IPv6 address") from None
    else:
        if not _HOST_CHARS.match(host):
            raise DestinationRejected(f"URL host {host!r} contains characters not allowed here")
        try:
            literal = _loose_ipv4(host)
        except ValueError:
            raise DestinationRejected(f"URL host {host!r} is not a valid IPv4 address") from None
        if literal is not None and host.rstrip(".") != str(literal):
            # 127.1, 2130706433, 0x7f000001, 0177.0.0.1: resolvers disagree on what these mean.
            reason = denied_reason(literal)
            detail = f" ({reason})" if reason and not allow_private else ""
            raise DestinationRejected(
                f"URL host {host!r} is a non-canonical spelling of {literal}{detail}; "
                "write the address as four decimal numbers"
            )

    if allow_private:
        return
    if literal is not None:
        reason = denied_reason(literal)
        if reason is not None:
            raise DestinationRejected(
                f"URL host is not allowed: {reason} (only public addresses are allowed)"
            )
    elif host.rstrip(".") in _LOCALHOST_NAMES or host.rstrip(".").endswith(".localhost"):
        raise DestinationRejected(f"URL host {host!r} is a loopback name")


# --- Resolution -----------------------------------------------------------------------------


def resolve_checked(
    host: str, port: int, *, allow_private: bool, resolver: Resolver = socket.getaddrinfo
) -> list[str]:
    """Resolve `host` once and return its addresses (strings, in resolver order, no repeats).

    Unless `allow_private`, every address must be public: one denied address rejects the host
    (a name that answers with both a public and a private address is not trustworthy).
    Raises DnsError when the name does not resolve, DestinationRejected when it is denied.
    `resolver` has the signature of socket.getaddrinfo and is called as
    resolver(host, port, type=socket.SOCK_STREAM).
    """
    name = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        infos = resolver(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        code = getattr(exc, "strerror", None) or type(exc).__name__
        raise DnsError(f"could not resolve host {name!r}: {code}") from None
    addresses: list[str] = []
    for info in infos or ():
        family, sockaddr = info[0], info[4]
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        text = str(sockaddr[0])
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise DnsError(f"host {name!r} resolved to no IP address")
    if not allow_private:
        for text in addresses:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                raise DestinationRejected(
                    f"host {name!r} resolved to an unparseable address {text!r}"
                ) from None
            reason = denied_reason(address)
            if reason is not None:
                raise DestinationRejected(
                    f"host {name!r} resolves to a denied address: {reason} "
                    "(only public addresses are allowed)"
                )
    return addresses
