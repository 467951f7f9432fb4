"""Receivers on 127.0.0.1 in their own process: `python -m bench.receiver --fast 4 --slow 4 ...`.

A tiny asyncio HTTP/1.1 keep-alive server. Modes: "fast" answers 200 at once, "slow" after
200 ms, "blackhole" accepts and reads but never answers. Every request is recorded with its
arrival time (time.time(), so other processes can compare) and its `webhook-id`. A control
port answers GET /count, GET /dump and POST /reset with JSON. Prints one JSON line with the
ports, then serves until SIGTERM or until its parent exits."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
SLOW_DELAY = 0.2
MAX_HEAD = 64 * 1024


class State:
    def __init__(self) -> None:
        self.records: list[tuple[str, int, str, float]] = []  # (mode, port, webhook-id, time)
        self.counts: dict[str, int] = {"fast": 0, "slow": 0, "blackhole": 0}
        self.open_connections = 0

    def reset(self) -> None:
        self.records.clear()
        self.counts = dict.fromkeys(self.counts, 0)


def parse_head(head: bytes) -> tuple[str, str, int, str]:
    lines = head.split(b"\r\n")
    method, path, _ = (lines[0].decode("latin-1").split(" ", 2) + ["", ""])[:3]
    length, wid = 0, ""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip() or 0)
        elif name == b"webhook-id":
            wid = value.strip().decode("latin-1")
    return method, path, length, wid


class Hook(asyncio.Protocol):
    def __init__(self, state: State, mode: str, port: int):
        self.state, self.mode, self.port = state, mode, port
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.state.open_connections += 1

    def connection_lost(self, exc) -> None:
        self.state.open_connections -= 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD:
                    self.transport.close()
                return
            method, path, length, wid = parse_head(self.buf[:end])
            total = end + 4 + length
            if len(self.buf) < total:
                return
            body = self.buf[end + 4 : total]
            self.buf = self.buf[total:]
            self.handle(method, path, wid, body)

    def handle(self, method: str, path: str, wid: str, body: bytes) -> None:
        if self.mode == "control":
            self.control(method, path)
            return
        self.state.records.append((self.mode, self.port, wid, time.time()))
        self.state.counts[self.mode] += 1
        if self.mode == "fast":
            self.transport.write(OK)
        elif self.mode == "slow":
            asyncio.get_running_loop().call_later(SLOW_DELAY, self._late_reply)
        # blackhole: never answer

    def _late_reply(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(OK)

    def control(self, method: str, path: str) -> None:
        if path.startswith("/count"):
            payload = {**self.state.counts, "open_connections": self.state.open_connections}
        elif path.startswith("/dump"):
            payload = self.state.records
        elif path.startswith("/reset") and method == "POST":
            self.state.reset()
            payload = {"ok": True}
        else:
            payload = {"error": "unknown"}
        body = json.dumps(payload).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        self.transport.write(head.encode() + body)


async def serve(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    state = State()
    ports: dict[str, list[int]] = {}
    servers = []
    plan = [("fast", args.fast), ("slow", args.slow), ("blackhole", args.blackhole), ("control", 1)]
    for mode, count in plan:
        for _ in range(count):
            holder: dict[str, int] = {}
            server = await loop.create_server(
                lambda m=mode, h=holder: Hook(state, m, h.get("port", 0)),
                "127.0.0.1",
                0,
                backlog=4096,
            )
            holder["port"] = server.sockets[0].getsockname()[1]
            ports.setdefault(mode, []).append(holder["port"])
            servers.append(server)
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    parent = os.getppid()
    while not stop.is_set():  # also stop when the bench process that started us is gone
        if os.getppid() != parent:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    for server in servers:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fast", type=int, default=1)
    parser.add_argument("--slow", type=int, default=0)
    parser.add_argument("--blackhole", type=int, default=0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
