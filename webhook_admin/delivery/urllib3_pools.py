"""Where the sender reaches into urllib3's internals: the one place, so a change of urllib3
breaks one module and its test (tests/delivery/test_library_adapters.py), not the sender.

What is relied on (urllib3 2.x, pinned in pyproject.toml):
- `HTTPConnectionPool._get_conn(timeout)` hands a connection to a request and
  `_put_conn(conn)` takes it back, both on the requesting thread: while a post holds a
  connection, that connection is bound to the post's deadline, so the deadline watchdog
  can shut its socket down (delivery/http_sender.py);
- `PoolManager.pool_classes_by_scheme` picks the pool class a manager builds;
- a pool builds its connections from `ConnectionCls`, and `connect()` is the hook after
  the TCP (and TLS) handshake."""

from __future__ import annotations

import threading
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from . import certificates


# The deadline of the post under way on this thread (None between posts): the sender sets
# `current.deadline`, which has `bind(conn)`, `unbind(conn)` and `expired`. A connection is
# got, connected and put back on the thread that posts (the test checks that too).
class _Current(threading.local):
    deadline: Any | None = None  # the class attribute: every thread starts with None


current = _Current()


def _check_not_expired(conn: Any) -> None:
    deadline = current.deadline
    if deadline is not None and deadline.expired:
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


class _DeadlineBinding:
    """Bind a connection to the running post's deadline while the post holds it."""

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)  # type: ignore[misc]
        deadline = current.deadline
        if deadline is not None:
            deadline.bind(conn)
        return conn

    def _put_conn(self, conn: Any) -> None:
        deadline = current.deadline
        if deadline is not None:
            deadline.unbind(conn)
        super()._put_conn(conn)  # type: ignore[misc]


class DeadlineHTTPPool(_DeadlineBinding, HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class DeadlineHTTPSPool(_DeadlineBinding, HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


POOL_CLASSES = {"http": DeadlineHTTPPool, "https": DeadlineHTTPSPool}


def use_deadline_pools(manager: Any) -> None:
    """Make a PoolManager (or ProxyManager) build our pools."""
    manager.pool_classes_by_scheme = POOL_CLASSES
