"""Peers for the same work: a bare requests loop, Celery 5 (prefork, gevent), RQ SimpleWorker.
Each peer's task is `requests.post(url, data=..., timeout=...)`."""

from __future__ import annotations

import json
import os

import requests

from .payload import PAYLOAD

BODY = json.dumps({"type": "transaction.approved", "data": PAYLOAD}).encode()
HEADERS = {"content-type": "application/json"}


def post(url: str, data: bytes, timeout: float, wid: str = "") -> int:
    """The RQ job (and the body of the Celery task)."""
    headers = {**HEADERS, "webhook-id": wid}
    return requests.post(url, data=data, headers=headers, timeout=timeout).status_code


def requests_loop(url: str, count: int, timeout: float = 10) -> None:
    session = requests.Session()
    for i in range(count):
        session.post(
            url, data=BODY, headers={**HEADERS, "webhook-id": f"loop-{i}"}, timeout=timeout
        )


def celery_app():
    from celery import Celery

    app = Celery("bench", broker=os.environ.get("BENCH_CELERY_BROKER", "redis://127.0.0.1:1/1"))
    app.conf.update(
        task_ignore_result=True,
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        task_serializer="json",
        accept_content=["json"],
    )
    app.task(name="bench.post")(_celery_post)
    return app


def _celery_post(url: str, data: str, timeout: float, wid: str = "") -> int:
    return post(url, data.encode(), timeout, wid)
