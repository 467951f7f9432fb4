"""A scripted receiver on 127.0.0.1 for the delivery state-machine test.

One socket-level server for every endpoint of the test (each endpoint has its own path). The
answer to the next request is whatever `answer` holds when the request arrives: the test sets
it just before it sends. Every request is logged by (path, webhook-id); a request that
arrives while another one for the same (path, webhook-id) is still open is logged as an
overlap (two sends of one delivery in flight at once)."""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass

# How long a "hang" holds the connection at most: longer than the sender's deadline, so the
# sender gives up first (it shuts the socket down, which ends the hang at once).
HANG_SECONDS = 0.5
# A request's handler finishes a moment after the sender has its answer (the close, the
# log). The next request for the same delivery waits up to this long for it before it
# counts as an overlap: far longer than that moment, even on a loaded machine. It costs
# nothing when nothing is open (the usual case).
OVERLAP_GRACE_SECONDS = 2.0


class Answer:
    """What the receiver does with a request. A plain class, not a dataclass: Hypothesis
    prints a rule's arguments with their repr (HTTP200, HANG), a dataclass field by field."""

    __slots__ = ("kind", "status", "retry_after")

    def __init__(self, kind: str, status: int = 200, retry_after: int | None = None):
        self.kind = kind  # status | reset | cut | hang
        self.status = status
        self.retry_after = retry_after

    def _key(self) -> tuple:
        return (self.kind, self.status, self.retry_after)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Answer) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        if self.kind != "status":
            return self.kind.upper()
        if self.retry_after is not None:
            return f"HTTP{self.status}_RETRY_AFTER_{self.retry_after}"
        return f"HTTP{self.status}"

    @property
    def acknowledges(self) -> bool:
        return self.kind == "status" and 200 <= self.status < 300


OK = Answer("status", 200)
ERROR = Answer("status", 500)
GONE = Answer("status", 410)
RESET = Answer("reset")
CUT = Answer("cut")  # a 200 cut short mid-body: not an acknowledgement
HANG = Answer("hang")


def too_many(retry_after: int) -> Answer:
    return Answer("status", 429, retry_after)


@dataclass(frozen=True)
class Seen:
    path: str
    webhook_id: str
    answer: Answer


class ScriptedReceiver:
    def __init__(self) -> None:
        self.answer: Answer = OK
        self.seen: list[Seen] = []
        self.acked: Counter[tuple[str, str]] = Counter()  # complete 2xx written
        self.overlaps: list[str] = []
        self._open: Counter[tuple[str, str]] = Counter()
        self._cond = threading.Condition()
        receiver = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                receiver._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return self.base_url + path

    def clear(self) -> None:
        """Forget what was received (a new example); waits for open requests to end."""
        with self._cond:
            self._cond.wait_for(lambda: not +self._open, timeout=OVERLAP_GRACE_SECONDS)
            self.answer = OK
            self.seen.clear()
            self.acked.clear()
            self.overlaps.clear()

    def count(self, path: str, webhook_id: str) -> int:
        with self._cond:
            return sum(1 for s in self.seen if (s.path, s.webhook_id) == (path, webhook_id))

    def _handle(self, sock: socket.socket) -> None:
        path, head = read_request(sock)
        if head is None:
            return
        key = (path, head.get("webhook-id", ""))
        with self._cond:
            answer = self.answer
            if not self._cond.wait_for(lambda: self._open[key] == 0, OVERLAP_GRACE_SECONDS):
                self.overlaps.append(f"{key}: a request arrived while another was open")
            self._open[key] += 1
            self.seen.append(Seen(*key, answer))
        try:
            if self._answer(sock, answer):
                with self._cond:
                    self.acked[key] += 1
        finally:
            with self._cond:
                self._open[key] -= 1
                self._cond.notify_all()

    @staticmethod
    def _answer(sock: socket.socket, answer: Answer) -> bool:
        """Answer the request; True for a complete 2xx."""
        try:
            if answer.kind == "reset":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif answer.kind == "cut":
                sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 10)
            elif answer.kind == "hang":
                sock.settimeout(HANG_SECONDS)
                deadline = time.monotonic() + HANG_SECONDS
                while time.monotonic() < deadline and sock.recv(65536):
                    pass  # until the sender hangs up (b"") or the hang is over
            else:
                extra = (
                    f"retry-after: {answer.retry_after}\r\n"
                    if answer.retry_after is not None
                    else ""
                )
                sock.sendall(
                    f"HTTP/1.1 {answer.status} X\r\ncontent-length: 2\r\nconnection: close\r\n"
                    f"{extra}\r\nok".encode()
                )
                return answer.acknowledges
        except OSError:
            pass  # the sender hung up (deadline) or the hang timed out
        finally:
            sock.close()
        return False

    def __enter__(self) -> ScriptedReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def read_request(sock: socket.socket) -> tuple[str, dict[str, str] | None]:
    """The path and the headers (lower-cased) of one HTTP/1.1 request, its body read and
    dropped; ("", None) on EOF."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return "", None
        data += chunk
    raw_head, _, body = data.partition(b"\r\n\r\n")
    request_line, *lines = raw_head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    parts = request_line.split(" ")
    return (parts[1] if len(parts) > 1 else ""), headers
