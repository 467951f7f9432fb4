"""A receiver on 127.0.0.1 that misbehaves on purpose, at the socket level.

Each request is answered by a `Fault` chosen by a script from (webhook-id, nth try of that
id): a status (with headers, e.g. 429 + Retry-After), a connection reset, a response cut off
mid-body, or silence until the sender's deadline passes. Every try is logged, and a 2xx is
counted as acknowledged only once it was written in full."""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Fault:
    kind: str = "status"  # status | reset | cut | hang | raw | endless
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # before answering (status) or before closing (hang)
    raw: bytes = b""  # raw: these bytes as the whole response; endless: the head, then forever


def raw(response: bytes) -> Fault:
    """Answer with exactly these bytes (status line, headers and body), then close."""
    return Fault("raw", raw=response)


def endless(head: bytes) -> Fault:
    """Send `head`, then body bytes until the sender hangs up: a body that never ends."""
    return Fault("endless", raw=head)


OK = Fault()
RESET = Fault("reset")
CUT = Fault("cut")


def hang(seconds: float) -> Fault:
    return Fault("hang", delay=seconds)


@dataclass
class Hit:
    webhook_id: str
    nth: int
    at: float  # time.monotonic()
    fault: Fault


Script = Callable[[str, int], Fault]


class FaultServer:
    def __init__(self, script: Script | None = None):
        self.script: Script = script or (lambda webhook_id, nth: OK)
        self.hits: list[Hit] = []
        self.acked: set[str] = set()
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handle(self, sock: socket.socket) -> None:
        head, body = read_request(sock)
        if head is None:
            return
        webhook_id = head.get("webhook-id", "")
        with self._lock:
            self._seen[webhook_id] += 1
            nth = self._seen[webhook_id]
        fault = self.script(webhook_id, nth)
        with self._lock:
            self.hits.append(Hit(webhook_id, nth, time.monotonic(), fault))
        if fault.kind == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        elif fault.kind == "cut":
            sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 10)
            sock.close()
        elif fault.kind == "hang":
            time.sleep(fault.delay)
            sock.close()
        elif fault.kind in ("raw", "endless"):
            self._send_raw(sock, fault, webhook_id)
        else:
            time.sleep(fault.delay)
            extra = "".join(f"{k}: {v}\r\n" for k, v in fault.headers.items())
            reply = f"HTTP/1.1 {fault.status} X\r\ncontent-length: 2\r\nconnection: close\r\n{extra}\r\nok"
            try:
                sock.sendall(reply.encode())
            except OSError:
                return
            if 200 <= fault.status < 300:
                with self._lock:
                    self.acked.add(webhook_id)

    def _send_raw(self, sock: socket.socket, fault: Fault, webhook_id: str) -> None:
        try:
            sock.sendall(fault.raw)
            if fault.kind == "endless":
                chunk = b"x" * 65536
                while True:  # until the sender closes the connection
                    sock.sendall(chunk)
        except OSError:
            return
        finally:
            sock.close()
        if fault.raw.startswith(b"HTTP/1.1 2"):
            with self._lock:
                self.acked.add(webhook_id)

    def tries(self, webhook_id: str) -> list[Hit]:
        with self._lock:
            return [h for h in self.hits if h.webhook_id == webhook_id]

    def __enter__(self) -> FaultServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def read_request(sock: socket.socket) -> tuple[dict[str, str] | None, bytes]:
    """Headers (lower-cased) and body of one HTTP/1.1 request; (None, b"") on EOF."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return None, b""
        data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    headers = {}
    for line in raw_head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return headers, body
