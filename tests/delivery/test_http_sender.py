"""The outbound HTTP client against real sockets on 127.0.0.0/8 only.

Every name (hooks.test, ...) is resolved by a stub resolver, and an autouse guard makes any
attempt to connect outside 127.0.0.0/8 or ::1 fail the test before a packet leaves.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable

import pytest
import trustme

from tests.support.receiver import Receiver, Reply
from webhook_admin.delivery.http_sender import Sender

SECRET = "tok-3f9a-very-secret"


# --- safety net and helpers -------------------------------------------------------------------


def stub_dns(*answers: list[str] | Exception) -> Callable:
    """A getaddrinfo stand-in: the n-th call gets answers[n] (the last one repeats)."""

    def resolver(host, port, *args, **kwargs):
        resolver.calls.append(host)
        answer = answers[min(len(resolver.calls), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        out = []
        for ip in answer:
            if ":" in ip:
                out.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0)))
            else:
                out.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port)))
        return out

    resolver.calls = []
    return resolver


def read_request(conn: socket.socket) -> bytes:
    """Read one HTTP request (headers and Content-Length body) from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


class RawServer:
    """A TCP server on a loopback address running `handler(conn, stopping)` per connection."""

    def __init__(self, handler, host: str = "127.0.0.1", port: int = 0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        self.stopping = threading.Event()
        self._handler = handler
        self._threads: list[threading.Thread] = []
        self._conns: list[socket.socket] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)

    def _accept(self):
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn):
        try:
            self._handler(conn, self.stopping)
        except OSError:
            pass
        finally:
            conn.close()

    def __enter__(self) -> RawServer:
        self._accepting.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for conn in self._conns:  # wake handlers blocked on idle keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)


def answer_ok(conn, stopping):
    while read_request(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def closed_port() -> int:
    """A loopback port with nothing listening on it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def hook_url(port: int, host: str = "hooks.test", scheme: str = "http") -> str:
    return f"{scheme}://{host}:{port}/hook?token={SECRET}"


@pytest.fixture
def canary():
    """A receiver that nothing may reach; tests assert it saw zero connections."""
    with Receiver() as running:
        yield running


@pytest.fixture
def local_sender():
    sender = Sender(allow_private=True, resolver=stub_dns(["127.0.0.1"]))
    yield sender
    sender.close()


def post(sender: Sender, url: str, *, timeout: float = 5.0, body: bytes = b'{"id": 1}'):
    return sender.post(url, body, {"content-type": "application/json"}, timeout=timeout)


# --- success, HTTP statuses, request shape ----------------------------------------------------


def test_post_to_2xx_receiver_succeeds(local_sender, receiver):
    result = post(local_sender, hook_url(receiver.port))
    assert (result.succeeded, result.status_code, result.body, result.error_class) == (
        True,
        200,
        b"ok",
        None,
    )


def test_post_sends_body_headers_and_original_host_name(local_sender, receiver):
    local_sender.post(hook_url(receiver.port), b"payload", {"webhook-id": "msg_1"}, timeout=5)
    request = receiver.wait_for(1)[0]
    assert (request.body, request.headers["webhook-id"], request.headers["host"]) == (
        b"payload",
        "msg_1",
        f"hooks.test:{receiver.port}",
    )


def test_caller_cannot_override_host_header(local_sender, receiver):
    local_sender.post(hook_url(receiver.port), b"x", {"Host": "internal.admin"}, timeout=5)
    assert receiver.wait_for(1)[0].headers["host"] == f"hooks.test:{receiver.port}"


def test_response_header_names_are_lower_cased(local_sender):
    with Receiver(lambda r: Reply(headers={"X-Trace-ID": "abc"})) as rcv:
        result = post(local_sender, hook_url(rcv.port))
    assert result.headers["x-trace-id"] == "abc"


def test_server_error_is_http_error_with_status(local_sender):
    with Receiver(lambda r: Reply(status=500, body=b"boom")) as rcv:
        result = post(local_sender, hook_url(rcv.port))
    assert (result.error_class, result.status_code, result.succeeded) == ("http", 500, False)


def test_redirect_is_returned_not_followed(local_sender, canary):
    location = f"http://127.0.0.1:{canary.port}/"
    with Receiver(lambda r: Reply(status=302, headers={"Location": location})) as rcv:
        result = post(local_sender, hook_url(rcv.port))
    assert (result.status_code, result.error_class, canary.connections) == (302, "http", 0)


# --- connection reuse and concurrency ---------------------------------------------------------


def test_keep_alive_reuses_one_connection(local_sender, receiver):
    post(local_sender, hook_url(receiver.port))
    post(local_sender, hook_url(receiver.port))
    assert receiver.connections == 1


def test_expired_deadline_of_finished_post_does_not_kill_pooled_connection(receiver):
    sender = Sender(allow_private=True, resolver=stub_dns(["127.0.0.1"]))
    try:
        first = post(sender, hook_url(receiver.port), timeout=0.2)
        time.sleep(0.5)  # the watchdog passes the first post's deadline while it is pooled
        second = post(sender, hook_url(receiver.port))
    finally:
        sender.close()
    assert (first.succeeded, second.succeeded, receiver.connections) == (True, True, 1)


def test_concurrent_posts_from_many_threads_all_succeed(local_sender):
    # RawServer has a 64-deep accept queue; the Receiver's 5 can drop SYNs under a burst.
    results = []
    lock = threading.Lock()

    def worker(port):
        for _ in range(10):
            result = post(local_sender, hook_url(port), timeout=10)
            with lock:
                results.append(result)

    with RawServer(answer_ok) as server:
        threads = [threading.Thread(target=worker, args=(server.port,)) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    failures = [(r.error_class, r.error_message) for r in results if not r.succeeded]
    assert (len(results), failures) == (160, [])


# --- DNS: one resolution per post, pinned address ---------------------------------------------


def test_each_post_resolves_the_host_exactly_once(receiver):
    resolver = stub_dns(["127.0.0.1"])
    sender = Sender(allow_private=True, resolver=resolver)
    try:
        post(sender, hook_url(receiver.port))
        post(sender, hook_url(receiver.port))
    finally:
        sender.close()
    assert resolver.calls == ["hooks.test", "hooks.test"]


def test_connection_goes_to_the_checked_address_not_a_later_answer(receiver):
    # Rebinding: the first answer is the one checked; any later lookup would say 127.0.0.2.
    with RawServer(answer_ok, host="127.0.0.2") as rebound:
        url = f"http://hooks.test:{receiver.port}/hook"
        resolver = stub_dns(["127.0.0.1"], ["127.0.0.2"])
        sender = Sender(allow_private=True, resolver=resolver)
        try:
            result = post(sender, url)
        finally:
            sender.close()
        assert (result.succeeded, rebound.connections) == (True, 0)


def test_connection_layer_never_looks_up_the_host_name(receiver, monkeypatch):
    looked_up = []
    real = socket.getaddrinfo
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda host, *a, **k: looked_up.append(host) or real(host, *a, **k)
    )
    sender = Sender(allow_private=True, resolver=stub_dns(["127.0.0.1"]))
    try:
        post(sender, hook_url(receiver.port))
    finally:
        sender.close()
    assert "hooks.test" not in looked_up


def test_next_post_follows_a_changed_dns_answer():
    with RawServer(answer_ok) as first, RawServer(answer_ok, "127.0.0.2", first.port) as second:
        resolver = stub_dns(["127.0.0.1"], ["127.0.0.2"])
        sender = Sender(allow_private=True, resolver=resolver)
        try:
            post(sender, hook_url(first.port))
            post(sender, hook_url(first.port))
        finally:
            sender.close()
        assert (first.connections, second.connections) == (1, 1)


def test_ipv6_loopback_literal_is_reached_when_private_allowed():
    with RawServer(answer_ok, host="::1") as server:
        sender = Sender(allow_private=True, resolver=socket.getaddrinfo)  # numeric-only here
        try:
            result = post(sender, f"http://[::1]:{server.port}/hook")
        finally:
            sender.close()
    assert result.succeeded


# --- SSRF: blocked before any connection ------------------------------------------------------


def test_name_resolving_to_loopback_is_blocked_without_connecting(canary):
    sender = Sender(allow_private=False, resolver=stub_dns(["127.0.0.1"]))
    try:
        result = post(sender, hook_url(canary.port, scheme="https"))
    finally:
        sender.close()
    assert (result.error_class, canary.connections) == ("blocked", 0)


@pytest.mark.parametrize("ip", ["10.0.0.1", "169.254.169.254", "fd00:ec2::254", "::ffff:7f00:1"])
def test_name_resolving_to_denied_address_is_blocked(ip):
    sender = Sender(allow_private=False, resolver=stub_dns([ip]))
    try:
        result = post(sender, "https://hooks.test/hook")
    finally:
        sender.close()
    assert result.error_class == "blocked"


def test_blocked_message_names_the_address():
    sender = Sender(allow_private=False, resolver=stub_dns(["169.254.169.254"]))
    try:
        result = post(sender, "https://hooks.test/hook")
    finally:
        sender.close()
    assert "169.254.169.254" in result.error_message


def test_name_with_public_and_private_answers_is_blocked():
    sender = Sender(allow_private=False, resolver=stub_dns(["93.184.216.34", "10.0.0.1"]))
    try:
        result = post(sender, "https://hooks.test/hook")
    finally:
        sender.close()
    assert result.error_class == "blocked"


@pytest.mark.parametrize(
    "url",
    [
        "https://0x7f000001/hook",
        "https://[::1]/hook",
        "http://hooks.test/hook",
        "ftp://hooks.test/hook",
        "https://user:pw@hooks.test/hook",
    ],
)
def test_url_breaking_static_rules_is_blocked_without_resolving(url):
    resolver = stub_dns(["127.0.0.1"])
    sender = Sender(allow_private=False, resolver=resolver)
    try:
        result = post(sender, url)
    finally:
        sender.close()
    assert (result.error_class, resolver.calls) == ("blocked", [])


def test_environment_proxy_settings_are_ignored(local_sender, receiver, canary, monkeypatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{canary.port}")
    result = post(local_sender, hook_url(receiver.port))
    assert (result.succeeded, canary.connections) == (True, 0)


# --- failures without a usable response --------------------------------------------------------


def test_unresolvable_name_is_dns_error():
    gaierror = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    sender = Sender(allow_private=True, resolver=stub_dns(gaierror))
    try:
        result = post(sender, "http://nowhere.test/hook")
    finally:
        sender.close()
    assert (result.error_class, result.status_code) == ("dns", None)


def test_connection_refused_is_connect_error(local_sender):
    result = post(local_sender, hook_url(closed_port()))
    assert (result.error_class, result.status_code) == ("connect", None)


def test_error_message_never_contains_the_url_query(local_sender):
    result = post(local_sender, hook_url(closed_port()))
    assert SECRET not in result.error_message


def test_reset_before_response_is_connect_error(local_sender):
    def reset(conn, stopping):
        read_request(conn)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")

    with RawServer(reset) as server:
        result = post(local_sender, hook_url(server.port))
    assert result.error_class == "connect"


def test_close_mid_body_is_connect_error(local_sender):
    def short_body(conn, stopping):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)

    with RawServer(short_body) as server:
        result = post(local_sender, hook_url(server.port))
    assert (result.error_class, result.succeeded) == ("connect", False)


# --- the total deadline -----------------------------------------------------------------------


def drip(payload: bytes, interval: float):
    def handler(conn, stopping):
        read_request(conn)
        for i in range(len(payload)):
            if stopping.wait(interval):
                return
            conn.sendall(payload[i : i + 1])

    return handler


def timed_post(sender, url, timeout):
    started = time.monotonic()
    result = post(sender, url, timeout=timeout)
    return result, time.monotonic() - started


def test_slow_drip_response_times_out_within_deadline(local_sender):
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" * 10
    with RawServer(drip(response, 0.2)) as server:
        result, elapsed = timed_post(local_sender, hook_url(server.port), timeout=1.0)
    assert result.error_class == "timeout" and elapsed < 2.0


def test_endless_headers_time_out_within_deadline(local_sender):
    def endless(conn, stopping):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        i = 0
        while not stopping.wait(0.05):
            conn.sendall(b"X-Filler-%d: %s\r\n" % (i, b"y" * 10))
            i += 1

    with RawServer(endless) as server:
        result, elapsed = timed_post(local_sender, hook_url(server.port), timeout=1.0)
    assert result.error_class == "timeout" and elapsed < 2.0


def test_slow_body_after_2xx_headers_is_timeout_not_success(local_sender):
    def slow_body(conn, stopping):
        read_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        while not stopping.wait(0.2):
            conn.sendall(b"x")

    with RawServer(slow_body) as server:
        result, elapsed = timed_post(local_sender, hook_url(server.port), timeout=1.0)
    assert (result.error_class, result.succeeded, elapsed < 2.0) == ("timeout", False, True)


def test_slow_response_within_deadline_succeeds(local_sender):
    with Receiver(lambda r: Reply(delay=0.3)) as rcv:
        result = post(local_sender, hook_url(rcv.port), timeout=2.0)
    assert result.succeeded


def test_unanswered_request_times_out_at_deadline(local_sender):
    def silent(conn, stopping):
        read_request(conn)
        stopping.wait(10)

    with RawServer(silent) as server:
        result, elapsed = timed_post(local_sender, hook_url(server.port), timeout=0.5)
    assert result.error_class == "timeout" and elapsed < 1.5


# --- response body cap ------------------------------------------------------------------------


def test_oversized_body_is_truncated_to_max_body():
    sender = Sender(allow_private=True, max_body=1000, resolver=stub_dns(["127.0.0.1"]))
    try:
        with Receiver(lambda r: Reply(body=b"z" * (1 << 20))) as rcv:
            result = post(sender, hook_url(rcv.port))
    finally:
        sender.close()
    assert (len(result.body), result.body_truncated, result.succeeded) == (1000, True, True)


def test_connection_of_truncated_response_is_not_reused():
    sender = Sender(allow_private=True, max_body=1000, resolver=stub_dns(["127.0.0.1"]))
    try:
        with Receiver(lambda r: Reply(body=b"z" * (1 << 20))) as rcv:
            post(sender, hook_url(rcv.port))
            post(sender, hook_url(rcv.port))
            connections = rcv.connections
    finally:
        sender.close()
    assert connections == 2


def test_body_within_limit_is_complete_and_not_truncated(local_sender):
    with Receiver(lambda r: Reply(body=b"a" * 5000)) as rcv:
        result = post(local_sender, hook_url(rcv.port))
    assert (result.body, result.body_truncated) == (b"a" * 5000, False)


# --- TLS --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def ca_bundle(ca, tmp_path):
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@pytest.fixture
def tls_receiver(ca):
    """HTTPS receiver with a certificate for hooks.test/localhost/127.0.0.1; records SNI."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("hooks.test", "localhost", "127.0.0.1").configure_cert(context)
    seen_sni: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: seen_sni.append(name)
    with Receiver(tls_context=context) as running:
        running.seen_sni = seen_sni
        yield running


def test_tls_delivery_with_ca_bundle_verifies_the_host_name(tls_receiver, ca_bundle):
    sender = Sender(allow_private=True, ca_bundle=ca_bundle, resolver=stub_dns(["127.0.0.1"]))
    try:
        result = post(sender, hook_url(tls_receiver.port, scheme="https"))
    finally:
        sender.close()
    assert (result.succeeded, tls_receiver.seen_sni) == (True, ["hooks.test"])


def test_tls_without_trusted_ca_is_tls_error(tls_receiver):
    sender = Sender(allow_private=True, resolver=stub_dns(["127.0.0.1"]))
    try:
        result = post(sender, hook_url(tls_receiver.port, scheme="https"))
    finally:
        sender.close()
    assert (result.error_class, tls_receiver.requests) == ("tls", [])


def test_tls_certificate_for_another_name_is_tls_error(tls_receiver, ca_bundle):
    sender = Sender(allow_private=True, ca_bundle=ca_bundle, resolver=stub_dns(["127.0.0.1"]))
    try:
        result = post(sender, hook_url(tls_receiver.port, host="other.test", scheme="https"))
    finally:
        sender.close()
    assert (result.error_class, tls_receiver.requests) == ("tls", [])


def test_tls_expired_certificate_is_tls_error(ca, ca_bundle):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    now = datetime.datetime.now(datetime.UTC)
    expired = ca.issue_cert(
        "hooks.test",
        not_before=now - datetime.timedelta(days=10),
        not_after=now - datetime.timedelta(days=1),
    )
    expired.configure_cert(context)
    sender = Sender(allow_private=True, ca_bundle=ca_bundle, resolver=stub_dns(["127.0.0.1"]))
    try:
        with Receiver(tls_context=context) as rcv:
            result = post(sender, hook_url(rcv.port, scheme="https"))
    finally:
        sender.close()
    assert (result.error_class, "expired" in result.error_message) == ("tls", True)


def test_tls_error_message_says_why(tls_receiver):
    sender = Sender(allow_private=True, resolver=stub_dns(["127.0.0.1"]))
    try:
        result = post(sender, hook_url(tls_receiver.port, scheme="https"))
    finally:
        sender.close()
    assert "certificate" in result.error_message


# --- egress proxy -----------------------------------------------------------------------------


class ConnectProxy(RawServer):
    """A CONNECT-only proxy that records targets and tunnels to loopback targets only."""

    def __init__(self):
        self.targets: list[str] = []
        super().__init__(self._handle)

    def _handle(self, client, stopping):
        head = read_request(client)
        target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode()
        self.targets.append(target)
        host, _, port = target.rpartition(":")
        if not ipaddress.ip_address(host.strip("[]")).is_loopback:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
            return
        upstream = socket.create_connection((host.strip("[]"), int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with upstream:
            pair = {client: upstream, upstream: client}
            while not stopping.is_set():
                ready, _, _ = select.select(list(pair), [], [], 0.1)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    pair[sock].sendall(data)


def test_egress_proxy_tunnels_to_the_checked_address(tls_receiver, ca_bundle):
    with ConnectProxy() as proxy:
        sender = Sender(
            allow_private=True,
            ca_bundle=ca_bundle,
            egress_proxy=f"http://127.0.0.1:{proxy.port}",
            resolver=stub_dns(["127.0.0.1"]),
        )
        try:
            result = post(sender, hook_url(tls_receiver.port, scheme="https"))
        finally:
            sender.close()
        assert (result.succeeded, proxy.targets) == (True, [f"127.0.0.1:{tls_receiver.port}"])


def test_egress_proxy_is_not_contacted_for_blocked_target():
    with ConnectProxy() as proxy:
        sender = Sender(
            allow_private=False,
            egress_proxy=f"http://127.0.0.1:{proxy.port}",
            resolver=stub_dns(["10.0.0.1"]),
        )
        try:
            result = post(sender, "https://hooks.test/hook")
        finally:
            sender.close()
        assert (result.error_class, proxy.connections) == ("blocked", 0)


def test_header_with_line_break_is_refused_without_quoting_it(local_sender, receiver):
    result = local_sender.post(
        hook_url(receiver.port),
        b"x",
        {"Authorization": "Bearer s3cret\r\nX-Injected: 1"},
        timeout=5,
    )
    assert (result.error_class, result.succeeded) == ("blocked", False)
    assert "s3cret" not in result.error_message and "line break" in result.error_message
    # The same sender still delivers: the refused request left no half-used connection.
    assert post(local_sender, hook_url(receiver.port)).succeeded


def test_cached_url_verdict_is_per_url_not_per_host(canary):
    """The static verdict is cached per URL string: a passing https URL must not let the same
    host's http URL through, and DNS is still checked on every post."""
    dns = stub_dns(["127.0.0.1"])
    with Sender(allow_private=False, resolver=dns) as sender:
        url = f"https://hooks.example:{canary.port}/hook"
        first = sender.post(url, b"x", {}, timeout=2)
        again = sender.post(url, b"x", {}, timeout=2)
        plain = sender.post(url.replace("https:", "http:"), b"x", {}, timeout=2)
    assert [r.error_class for r in (first, again, plain)] == ["blocked"] * 3
    assert "loopback" in first.error_message and "loopback" in again.error_message
    assert "scheme" in plain.error_message
    assert dns.calls == ["hooks.example", "hooks.example"]
    assert canary.connections == 0
