"""The outbound HTTP client for webhook deliveries.

One `Sender` is shared by all worker threads. For every `post` it:

1. applies the static URL rules (`check_url`; the verdict is cached per URL string, as it
   depends on nothing else);
2. resolves the host exactly once (`resolve_checked`) and checks every address;
3. connects to the first checked address (the "pinned" IP) while keeping the original host name
   for the Host header, TLS SNI and certificate verification, so a second DNS answer can
   never be used (no DNS rebinding), not even by urllib3;
4. enforces one wall-clock deadline for the whole attempt with a watchdog thread that shuts the
   socket down when the deadline passes (a receiver that trickles bytes cannot hold a worker);
5. reads at most `max_body` bytes of the response, never follows redirects, and turns every
   network or HTTP problem into a `SendResult` with an `error_class`.

Connections are kept alive in urllib3 pools keyed by (scheme, pinned IP, port, TLS host name).
Nothing here logs request or response headers or bodies: they carry signatures.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import certifi
import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager, ProxyManager, proxy_from_url
from urllib3.util import make_headers, parse_url
from urllib3.util.ssl_match_hostname import CertificateError

from webhook_admin.delivery import certificates
from webhook_admin.delivery.destination import (
    DestinationRejected,
    DnsError,
    check_url,
    resolve_checked,
)

__all__ = ["SendResult", "Sender"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Headers the sender owns; values given by the caller are dropped.
_OWNED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


@dataclass
class SendResult:
    status_code: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    body_truncated: bool = False
    error_class: str | None = None
    error_message: str | None = None
    duration_ms: int = 0

    @property
    def succeeded(self) -> bool:
        return (
            self.status_code is not None
            and 200 <= self.status_code < 300
            and self.error_class is None
        )


# --- Deadline enforcement -------------------------------------------------------------------

_local = threading.local()


class _Attempt:
    """One post's deadline, and the connection it is currently using."""

    __slots__ = ("deadline", "lock", "conn", "expired", "interrupted", "done")

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.lock = threading.Lock()
        self.conn: Any = None
        self.expired = False  # the watchdog fired before the attempt finished
        self.interrupted = False  # ... and shut a live socket down
        self.done = False

    def bind(self, conn: Any) -> None:
        with self.lock:
            self.conn = conn
            conn._webhook_attempt = self

    def unbind(self, conn: Any) -> None:
        with self.lock:
            if getattr(conn, "_webhook_attempt", None) is self:
                conn._webhook_attempt = None
            if self.conn is conn:
                self.conn = None

    def expire(self) -> None:
        with self.lock:
            if self.done:
                return
            self.expired = True
            sock = getattr(self.conn, "sock", None)
            if sock is not None:
                try:
                    # The plain-socket method, also for SSLSocket: it wakes a blocked recv
                    # without touching the SSL object the owning thread is using.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    self.interrupted = True
                except OSError:
                    pass

    def finish(self) -> None:
        with self.lock:
            self.done = True
            if self.conn is not None and getattr(self.conn, "_webhook_attempt", None) is self:
                self.conn._webhook_attempt = None
            self.conn = None


class _Watchdog:
    """One thread that expires attempts at their deadlines (a heap, not a timer per post)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Attempt]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, attempt: _Attempt) -> None:
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="webhook-deadline-watchdog", daemon=True
                )
                self._thread.start()
            heapq.heappush(self._heap, (attempt.deadline, next(self._seq), attempt))
            if self._heap[0][2] is attempt:
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - time.monotonic()
                    if wait > 0:
                        self._cond.wait(wait)
                        continue
                    attempt = heapq.heappop(self._heap)[2]
                    break
            attempt.expire()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)


def _check_not_expired(conn: Any) -> None:
    attempt = getattr(conn, "_webhook_attempt", None)
    if attempt is not None and attempt.expired:
        conn.close()
        raise TimeoutError("delivery deadline passed while connecting")


class _HTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _check_not_expired(self)


class _HTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _check_not_expired(self)
        certificates.note_handshake(self.sock, self.server_hostname)  # once per connection


class _PoolMixin:
    """Bind a connection to the running attempt while the attempt holds it."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        attempt = getattr(_local, "attempt", None)
        if attempt is not None:
            attempt.bind(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        attempt = getattr(conn, "_webhook_attempt", None)
        if attempt is not None:
            attempt.unbind(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class _HTTPPool(_PoolMixin, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(_PoolMixin, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOL_CLASSES = {"http": _HTTPPool, "https": _HTTPSPool}


# --- destinations and pools ----------------------------------------------------------------


@dataclass(frozen=True)
class _Destination:
    """A URL that passed the static rules, split the way it is sent (IDNA host, encoded path)."""

    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int
    request_target: str  # path and query, percent-encoded; the fragment is never sent
    host_header: str

    @classmethod
    def parse(cls, url: str, *, allow_private: bool) -> _Destination:
        """Apply `check_url` and split the URL. Raises DestinationRejected."""
        check_url(url, allow_private=allow_private)
        try:
            # urllib3's parser is the one check_url compared its host with.
            parsed = parse_url(url)
            scheme = (parsed.scheme or "").lower()
            port = parsed.port or _DEFAULT_PORTS[scheme]
        except (ValueError, KeyError):
            raise DestinationRejected("URL is not valid") from None
        host = (parsed.host or "").strip("[]")
        shown = f"[{host}]" if ":" in host else host
        return cls(
            scheme=scheme,
            host=host,
            port=port,
            request_target=parsed.request_uri,
            host_header=shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}",
        )


class _DestinationCache:
    """`_Destination.parse` results per URL string: the static rules depend on nothing else
    (DNS is looked up and checked on every post, never cached here)."""

    MAX_ENTRIES = 4096

    def __init__(self, *, allow_private: bool):
        self._allow_private = allow_private
        self._parsed: dict[str, _Destination] = {}

    def get(self, url: str) -> _Destination:
        destination = self._parsed.get(url)
        if destination is None:
            destination = _Destination.parse(url, allow_private=self._allow_private)
            if len(self._parsed) >= self.MAX_ENTRIES:
                self._parsed.clear()  # rare (thousands of distinct URLs): start over
            self._parsed[url] = destination
        return destination


def _proxy_auth_headers(proxy: str) -> dict[str, str]:
    auth = parse_url(proxy).auth
    if not auth:
        return {}
    user, _, password = auth.partition(":")
    return make_headers(proxy_basic_auth=f"{unquote(user)}:{unquote(password)}")


class _PinnedPools:
    """urllib3 pools keyed by the checked IP we connect to; the host name only names the TLS
    server (SNI, certificate) and the Host header. With an egress proxy, HTTPS is tunnelled
    (CONNECT to the checked IP) and plain HTTP is forwarded with the IP in the request line."""

    def __init__(
        self, *, ssl_context: ssl.SSLContext, proxy: str | None, num_pools: int, maxsize: int
    ):
        self._ssl_context = ssl_context
        self._direct = PoolManager(num_pools=num_pools, maxsize=maxsize)
        self._direct.pool_classes_by_scheme = _POOL_CLASSES
        self._proxy: ProxyManager | None = None
        if proxy:
            self._proxy = proxy_from_url(
                proxy,
                proxy_headers=_proxy_auth_headers(proxy),
                num_pools=num_pools,
                maxsize=maxsize,
            )
            self._proxy.pool_classes_by_scheme = _POOL_CLASSES

    def pool_and_url(self, destination: _Destination, ip: str) -> tuple[Any, str]:
        ip_literal = f"[{ip}]" if ":" in ip else ip
        pool_kwargs: dict[str, Any] = {}
        if destination.scheme == "https":
            pool_kwargs = {
                "ssl_context": self._ssl_context,
                "cert_reqs": "CERT_REQUIRED",
                "server_hostname": destination.host,  # SNI and certificate name: the URL's
            }
        manager = self._proxy or self._direct
        pool = manager.connection_from_host(
            scheme=destination.scheme,
            host=ip_literal,
            port=destination.port,
            pool_kwargs=pool_kwargs,
        )
        url = destination.request_target
        if self._proxy is not None and destination.scheme == "http":
            # A forwarding proxy gets an absolute URL: give it the checked IP, not the name.
            url = f"http://{ip_literal}:{destination.port}{url}"
        return pool, url

    def close(self) -> None:
        self._direct.clear()
        if self._proxy is not None:
            self._proxy.clear()


# --- error classification -------------------------------------------------------------------


def _exception_chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    pending = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or any(current is s for s in seen):
            continue
        seen.append(current)
        pending.extend([current.__cause__, current.__context__])
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            pending.append(reason)
        pending.extend(a for a in current.args if isinstance(a, BaseException))
    return seen


def _is_library_wrapper(exc: BaseException) -> bool:
    # urllib3's messages may quote the request path and query: never show them.
    return type(exc).__module__.startswith("urllib3")


def _classify(exc: BaseException, where: str) -> tuple[str, str]:
    """(error_class, message) for a failed send; `where` is "ip:port", never the URL."""
    chain = _exception_chain(exc)
    for item in chain:
        if isinstance(item, TimeoutError) or (
            isinstance(item, urllib3.exceptions.TimeoutError)
            and not isinstance(item, urllib3.exceptions.NewConnectionError)
        ):
            return "timeout", f"timed out talking to {where}"
    for item in chain:
        if isinstance(item, ssl.SSLCertVerificationError):
            return "tls", f"TLS certificate verification failed: {item.verify_message}"
        if isinstance(item, CertificateError):
            return "tls", f"TLS certificate verification failed: {str(item)[:200]}"
    for item in chain:
        if isinstance(item, ssl.SSLError) and not isinstance(item, ssl.SSLEOFError):
            reason = item.reason or type(item).__name__
            return "tls", f"TLS handshake with {where} failed: {reason}"
    for item in chain:
        if isinstance(item, ConnectionRefusedError):
            return "connect", f"connection refused by {where}"
        if isinstance(item, ConnectionResetError | BrokenPipeError):
            return "connect", f"connection reset by {where}"
    for item in chain:
        if isinstance(item, http.client.IncompleteRead | urllib3.exceptions.IncompleteRead):
            return "connect", f"{where} closed the connection before the full response"
        if isinstance(item, http.client.RemoteDisconnected):
            return "connect", f"{where} closed the connection without a response"
        if isinstance(item, urllib3.exceptions.ProxyError):
            return "connect", "the egress proxy refused or failed the connection"
    for item in reversed(chain):
        if not _is_library_wrapper(item):
            text = item.strerror if isinstance(item, OSError) and item.strerror else str(item)
            text = "".join(ch if ch.isprintable() else " " for ch in text[:200]).strip()
            return "connect", f"connection to {where} failed: {type(item).__name__}: {text}"
    return "connect", f"connection to {where} failed"


# --- the sender -----------------------------------------------------------------------------


class Sender:
    """Thread-safe webhook HTTP client. See the module docstring for the rules it enforces."""

    def __init__(
        self,
        *,
        allow_private: bool,
        connect_timeout: float = 5.0,
        ca_bundle: str | None = None,
        egress_proxy: str | None = None,
        max_body: int = 65536,
        user_agent: str = "webhook-admin/0.1",
        resolver=socket.getaddrinfo,
        pool_maxsize: int = 32,
    ):
        self._allow_private = allow_private
        self._connect_timeout = connect_timeout
        self._max_body = max_body
        self._resolver = resolver
        self._base_headers = {
            "User-Agent": user_agent,
            "Accept": "*/*",
            "Accept-Encoding": "identity",  # a capped body must be raw bytes, not a zip bomb
        }
        self._destinations = _DestinationCache(allow_private=allow_private)
        ssl_context = ssl.create_default_context(cafile=ca_bundle or certifi.where())
        self._pools = _PinnedPools(
            ssl_context=ssl_context,
            proxy=egress_proxy,
            num_pools=max(64, pool_maxsize * 4),
            maxsize=pool_maxsize,
        )
        self._watchdog = _Watchdog()

    def close(self) -> None:
        self._pools.close()
        self._watchdog.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, destination: _Destination, headers: dict[str, str]) -> dict[str, str]:
        """Our defaults, then the caller's (one value per name, any case), then Host."""
        merged = {name.lower(): (name, value) for name, value in self._base_headers.items()}
        for name, value in headers.items():
            key = name.lower()
            if key not in _OWNED_HEADERS:
                merged[key] = (name, value)
        merged["host"] = ("Host", destination.host_header)
        return dict(merged.values())

    def _read_capped(self, response: Any) -> bytes:
        """Read the body up to max_body + 1 bytes (the extra byte tells us it was cut)."""
        limit = self._max_body + 1
        chunks: list[bytes] = []
        total = 0
        while total < limit:
            # Reading on until EOF lets urllib3 notice a body shorter than Content-Length.
            chunk = response.read(min(65536, limit - total), decode_content=False)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        return b"".join(chunks)

    def post(self, url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> SendResult:
        started = time.monotonic()
        deadline = started + timeout

        def failure(error_class: str, message: str, **extra: Any) -> SendResult:
            duration = int((time.monotonic() - started) * 1000)
            return SendResult(
                status_code=extra.pop("status_code", None),
                error_class=error_class,
                error_message=message,
                duration_ms=duration,
                **extra,
            )

        # 1. static rules (cached per URL), and the host exactly as it is sent (IDNA-encoded).
        try:
            destination = self._destinations.get(url)
        except DestinationRejected as exc:
            return failure("blocked", str(exc))

        # 2. resolve once, check every address, pin the first.
        try:
            addresses = resolve_checked(
                destination.host,
                destination.port,
                allow_private=self._allow_private,
                resolver=self._resolver,
            )
        except DestinationRejected as exc:
            return failure("blocked", str(exc))
        except DnsError as exc:
            return failure("dns", str(exc))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return failure("timeout", "deadline passed while resolving the host name")
        ip = addresses[0]
        where = f"[{ip}]:{destination.port}" if ":" in ip else f"{ip}:{destination.port}"

        # 3. send under the watchdog.
        attempt = _Attempt(deadline)
        self._watchdog.watch(attempt)
        _local.attempt = attempt
        response = None
        status_code: int | None = None
        response_headers: dict[str, str] = {}
        error: BaseException | None = None
        header_refused = False
        data = b""
        try:
            pool, request_url = self._pools.pool_and_url(destination, ip)
            response = pool.urlopen(
                "POST",
                request_url,
                body=body,
                headers=self._headers(destination, headers),
                retries=False,
                redirect=False,
                assert_same_host=False,
                preload_content=False,
                decode_content=False,
                timeout=urllib3.Timeout(
                    connect=min(self._connect_timeout, remaining), read=remaining
                ),
            )
            status_code = response.status
            response_headers = {k.lower(): v for k, v in response.headers.items()}
            data = self._read_capped(response)
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            error = exc
        except ValueError:
            # http.client refuses a header name or value with a line break or control
            # character (endpoints are validated when saved; this is the last line). Its
            # message quotes the value, which may be a secret: say it in our words.
            header_refused = True
        finally:
            if response is not None:
                response.close()  # closes a connection whose body was not read to the end
                response.release_conn()  # ... and returns the connection to its pool
            _local.attempt = None
            attempt.finish()

        truncated = len(data) > self._max_body
        data = data[: self._max_body]
        response_parts = {
            "status_code": status_code,
            "headers": response_headers,
            "body": data,
            "body_truncated": truncated,
        }
        if header_refused:
            return failure("blocked", "a request header has a line break or control character")
        if attempt.expired and (error is not None or attempt.interrupted):
            return failure("timeout", f"no complete response within {timeout:g}s", **response_parts)
        if error is not None:
            error_class, message = _classify(error, where)
            return failure(error_class, message, **response_parts)
        assert status_code is not None
        if not 200 <= status_code < 300:
            return failure("http", f"receiver answered HTTP {status_code}", **response_parts)
        return SendResult(
            status_code=status_code,
            headers=response_headers,
            body=data,
            body_truncated=truncated,
            error_class=None,
            error_message=None,
            duration_ms=int((time.monotonic() - started) * 1000),
        )
