"""A real Redis Sentinel group on 127.0.0.1: a master, a replica and three sentinels, every one
a `redis-server` process (`redis-server sentinel.conf --sentinel`) on a free port.

The sentinels decide fast (the master is down after 1 s without an answer, quorum 2), so a
test can SIGKILL the master and watch the replica take over within a few seconds."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from tests.support.redis_server import free_port

MASTER_NAME = "webhooks"
DOWN_AFTER_MS = 1000


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class SentinelGroup:
    def __init__(self, workdir: str, sentinels: int = 3):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed")
        self.dir = Path(workdir)
        self.master_port = free_port()
        self.replica_port = free_port()
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self.processes: dict[int, subprocess.Popen] = {}

    @property
    def sentinels_setting(self) -> str:
        """The value of REDIS_SENTINELS for this group."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def _data_server(self, port: int, *extra: str) -> None:
        data = self.dir / f"redis-{port}"
        data.mkdir()
        self._spawn(
            port,
            [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(data), *extra],
        )

    def _spawn(self, port: int, argv: list[str]) -> None:
        self.processes[port] = subprocess.Popen(
            argv, stdout=(self.dir / f"{port}.log").open("ab"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while not _answers(port):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)

    def start(self) -> SentinelGroup:
        self._data_server(self.master_port)
        self._data_server(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        for port in self.sentinel_ports:
            config = self.dir / f"sentinel-{port}.conf"  # sentinels rewrite their config
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
                f"sentinel failover-timeout {MASTER_NAME} 10000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
            self._spawn(port, [self.binary, str(config), "--sentinel"])
        self.wait_until_ready()
        return self

    def sentinel(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)

    def master_address(self, sentinel_port: int | None = None) -> tuple[str, int]:
        host, port = self.sentinel(sentinel_port or self.sentinel_ports[0]).execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
        )
        return host.decode(), int(port)

    def wait_until_ready(self, timeout: float = 20) -> None:
        """Every sentinel knows the replica and the two other sentinels, and the replica is
        in sync: a failover can happen."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = [
                    self.sentinel(p).sentinel_master(MASTER_NAME) for p in self.sentinel_ports
                ]
                replica = redis.Redis(port=self.replica_port, socket_timeout=1).info("replication")
                if replica.get("master_link_status") == "up" and all(
                    s["num-slaves"] >= 1 and s["num-other-sentinels"] >= len(states) - 1
                    for s in states
                ):
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"sentinel group not ready in {timeout}s, logs in {self.dir}")
            time.sleep(0.1)

    def kill_master(self) -> None:
        """SIGKILL: no goodbye to clients, replicas or sentinels."""
        process = self.processes.pop(self.master_port)
        process.send_signal(signal.SIGKILL)
        process.wait(5)

    def wait_for_failover(self, timeout: float = 30) -> float:
        """Block until every sentinel names the replica as master; returns time.monotonic()."""
        deadline = time.monotonic() + timeout
        want = ("127.0.0.1", self.replica_port)
        while time.monotonic() < deadline:
            try:
                if all(self.master_address(p) == want for p in self.sentinel_ports):
                    return time.monotonic()
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"no failover to {want} within {timeout}s, logs in {self.dir}")

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self.processes.clear()
