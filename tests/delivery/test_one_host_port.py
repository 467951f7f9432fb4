"""Many endpoints that are paths on one host:port (a partner platform with one URL per
merchant, issue 16): every delivery thread may be in flight to that one host:port, and each
keeps its connection for the next post. The sender's pool per (scheme, IP, port) is sized
by the runner's threads, not by the setting alone (`worker.py --threads` overrides it)."""

from __future__ import annotations

import threading
from dataclasses import replace

from webhook_admin.config import load_settings
from webhook_admin.delivery.runner import make_sender

from .test_http_sender import RawServer, read_request

THREADS = 12


class HeldAnswers:
    """Answers nothing until `wave` requests are held at once, then all of them."""

    def __init__(self, wave: int):
        self.wave = wave
        self.lock = threading.Lock()
        self.held = 0
        self.most_held = 0
        self.release = threading.Event()

    def handler(self, conn, stopping):
        while read_request(conn):
            with self.lock:
                self.held += 1
                self.most_held = max(self.most_held, self.held)
                if self.held == self.wave:
                    self.release.set()
            self.release.wait(30)  # not a timed assertion: the test fails on the counts
            with self.lock:
                self.held -= 1
                if self.held == 0:
                    self.release.clear()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def post_wave(sender, urls: list[str]) -> list[bool]:
    results: list[bool] = [False] * len(urls)

    def one(i: int) -> None:
        result = sender.post(urls[i], b"{}", {"content-type": "application/json"}, timeout=60)
        results[i] = result.succeeded

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(urls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_all_threads_in_flight_to_one_host_port_keep_their_connections():
    settings = replace(
        load_settings({"APP_ENV": "development"}), worker_threads=4, allow_private_networks=True
    )
    receiver = HeldAnswers(THREADS)
    with RawServer(receiver.handler) as server:
        urls = [f"http://127.0.0.1:{server.port}/merchant/{i}" for i in range(THREADS)]
        sender = make_sender(settings, THREADS)
        try:
            assert all(post_wave(sender, urls))
            assert all(post_wave(sender, urls))
        finally:
            sender.close()
    assert receiver.most_held == THREADS  # all in flight at once to the one host:port
    # One connection per thread, reused by the second wave; a pool of 4 (the setting)
    # closed 8 of them after the first wave and the second opened 8 new ones (20).
    assert server.connections == THREADS
