"""The client's real address and scheme behind reverse proxies (WEBHOOK_TRUSTED_PROXIES).

`X-Forwarded-For` and `X-Forwarded-Proto` are whatever the sender wrote, so they are
believed only as far as they were written by a proxy we trust. Werkzeug's ProxyFix does the
rewriting (`REMOTE_ADDR`, `wsgi.url_scheme`; the originals stay in `werkzeug.proxy_fix.orig`):
- a hop count N: exactly N proxies stand in front of us, each appending the address it saw;
  the client is the Nth address from the right (what a client writes further left is ignored);
- networks: the direct peer must be in one of them, and so must every address walked past from
  the right; the first address outside them is the client. A request that does not come from a
  trusted proxy keeps its own peer address and scheme, whatever headers it carries.
Everything that reads `request.remote_addr` or `request.is_secure` (the login throttle, the
audit log, the /metrics loopback rule, cookies) then sees the real client."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from werkzeug.middleware.proxy_fix import ProxyFix

from .config import TrustedProxies

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def trusted_hops(peer: str, forwarded_for: str, networks: Iterable[Network]) -> int:
    """How many proxies of ours this request passed through: 0 when the peer is not one."""
    networks = tuple(networks)

    def trusted(text: str) -> bool:
        address = _address(text)
        return address is not None and any(address in network for network in networks)

    chain = [part for part in forwarded_for.split(",") if part.strip()] + [peer]
    index = len(chain) - 1
    while index > 0 and trusted(chain[index]):
        index -= 1
    return len(chain) - 1 - index


class TrustedProxyFix:
    """WSGI middleware: ProxyFix with a fixed hop count, or with one worked out per request
    from the proxies' networks."""

    def __init__(self, wsgi_app, trusted: TrustedProxies):
        self.wsgi_app = wsgi_app
        self.trusted = trusted
        self._fixers: dict[int, ProxyFix] = {}

    def _fixer(self, hops: int) -> ProxyFix:
        fixer = self._fixers.get(hops)
        if fixer is None:
            fixer = self._fixers[hops] = ProxyFix(self.wsgi_app, x_for=hops, x_proto=hops)
        return fixer

    def __call__(self, environ, start_response):
        if isinstance(self.trusted, int):
            hops = self.trusted
        else:
            hops = trusted_hops(
                environ.get("REMOTE_ADDR", ""),
                environ.get("HTTP_X_FORWARDED_FOR", ""),
                self.trusted,
            )
        if hops == 0:
            return self.wsgi_app(environ, start_response)
        return self._fixer(hops)(environ, start_response)


def install_proxy_fix(app, trusted: TrustedProxies) -> None:
    """Wrap the app when any proxy is trusted (nothing changes when none is)."""
    if trusted:
        app.wsgi_app = TrustedProxyFix(app.wsgi_app, trusted)
