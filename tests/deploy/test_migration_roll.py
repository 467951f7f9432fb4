"""A schema migration while the old release runs: code N and N+1 side by side on schema N+1.

A scratch database of its own gets the real migrations, then, under load and while two
workers of code N deliver, the example migration (tests/deploy/example_migration: adds
deliveries.priority, NOT NULL with a server default) through Alembic's API with a second
version location. Then the roll: a worker and a web node of code N+1 (tests/deploy/
next_release.py, whose model maps and writes the column) start, and the old workers are
stopped one by one with SIGTERM. Every event is delivered exactly once, by old and new
workers both; the old web node keeps ingesting and stays ready (/readyz) on the newer schema."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests
from sqlalchemy import text

from tests import conftest
from tests.conftest import signed_headers, valid_data
from tests.faults.conftest import Acking
from tests.faults.invariants import check_invariants
from tests.support.processes import ROOT, WorkerProcess, wait_until
from tests.support.receiver import Receiver
from tests.support.redis_server import free_port
from webhook_admin import create_app
from webhook_admin.extensions import db
from webhook_admin.services.catalog import seed_catalog
from webhook_admin.services.endpoints import EndpointInput, create_endpoint

EXAMPLE = Path(__file__).resolve().parent / "example_migration"
RATE = 30  # events/s


@pytest.fixture
def scratch_database(database_url, tmp_path):
    """A database of this test's own (never the suite's): SQLite file or PostgreSQL db."""
    if not database_url.startswith("postgresql"):
        yield f"sqlite:///{tmp_path}/roll.db"
        return
    import psycopg

    admin = database_url.replace("postgresql+psycopg://", "postgresql://")
    base, name = admin.rsplit("/", 1)
    scratch = f"{name}_roll"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{scratch}"')
    yield f"{base}/{scratch}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def alembic_config(app, with_example: bool):
    """The app's Alembic config; with the example, its folder as a second version location."""
    migrate = app.extensions["migrate"]
    config = migrate.migrate.get_config(migrate.directory)
    if with_example:
        config.set_main_option("path_separator", "os")
        config.set_main_option(
            "version_locations",
            os.pathsep.join([str(Path(migrate.directory) / "versions"), str(EXAMPLE)]),
        )
    return config


class NextRelease:
    """A process of code N+1 (python -m tests.deploy.next_release ...)."""

    def __init__(self, environ: dict[str, str], *args: str):
        self.worker = WorkerProcess(environ)
        self.worker.process = subprocess.Popen(
            [sys.executable, "-m", "tests.deploy.next_release", *args],
            cwd=ROOT,
            env=self.worker.environ,
            stdout=self.worker.log,
            stderr=subprocess.STDOUT,
        )


class Load(threading.Thread):
    """Signed events at a steady rate, alternating over the web nodes currently in `targets`
    (a Flask test client of code N, or the URL of the N+1 web process)."""

    def __init__(self, old_web_client):
        super().__init__(daemon=True, name="load")
        self.targets: list = [old_web_client]
        self.accepted: dict[str, str] = {}  # event id -> "N" or "N+1" (who ingested it)
        self.refused: list[str] = []
        self.stop_event = threading.Event()
        self.session = requests.Session()

    def post(self, target, event_id: str) -> int:
        body = json.dumps(
            {"type": "transaction.approved", "data": valid_data(id=event_id)}
        ).encode()
        headers = signed_headers(body, event_id)
        if isinstance(target, str):
            return self.session.post(target, data=body, headers=headers, timeout=10).status_code
        return target.post("/api/v1/events", data=body, headers=headers).status_code

    def run(self) -> None:
        n, next_at = 0, time.monotonic()
        while not self.stop_event.is_set():
            target = self.targets[n % len(self.targets)]
            event_id = f"evt_roll_{n}_{uuid.uuid4().hex[:6]}"
            status = self.post(target, event_id)
            if status == 202:
                self.accepted[event_id] = "N+1" if isinstance(target, str) else "N"
            else:
                self.refused.append(f"{event_id}: {status}")
            n += 1
            next_at += 1 / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))


def attempts_logged(worker: WorkerProcess) -> int:
    return worker.output().count("INFO webhook_admin.delivery.attempt: attempt delivery_id=")


def test_old_and_new_code_deliver_side_by_side_while_a_column_is_added(
    scratch_database, redis_server
):
    environ = conftest.test_environ(scratch_database, redis_server.url, WEBHOOK_SWEEP_INTERVAL="1")
    old_web = create_app(environ)  # code N: this process never maps the new column
    acking = Acking()
    processes: list[WorkerProcess] = []
    with old_web.app_context(), Receiver(acking) as receiver:
        from alembic import command

        command.upgrade(alembic_config(old_web, with_example=False), "head")  # schema N
        seed_catalog()
        endpoint, _ = create_endpoint(EndpointInput(receiver.url, ["transaction.approved"]), "t")
        db.session.commit()
        endpoint_id = endpoint.id
        try:
            old_workers = [
                WorkerProcess(environ, "--threads", "8", "--name", f"old-{n}").start()
                for n in (1, 2)
            ]
            processes += old_workers
            load = Load(old_web.test_client())
            load.start()
            wait_until(lambda: len(acking.acked) >= 20, timeout=30, message=old_workers[0].output())

            # Schema N+1 while code N ingests and delivers.
            command.upgrade(alembic_config(old_web, with_example=True), "heads")
            db.session.remove()
            version = db.session.scalar(text("SELECT version_num FROM alembic_version"))
            assert version == "9001_example"
            seen = len(acking.acked)
            wait_until(lambda: len(acking.acked) >= seen + 20, timeout=30)
            ready = old_web.test_client().get("/readyz")
            assert ready.status_code == 200, ready.get_json()  # old web stays in rotation

            # The roll: code N+1 comes up beside code N, then code N goes, one by one.
            port = free_port()
            new_web = NextRelease(environ, "web", str(port)).worker
            new_worker = NextRelease(environ, "worker", "--threads", "8", "--name", "new-1").worker
            processes += [new_web, new_worker]
            wait_until(lambda: _answers(port), timeout=20, message=new_web.output())
            load.targets.append(f"http://127.0.0.1:{port}/api/v1/events")
            wait_until(lambda: attempts_logged(new_worker) >= 10, timeout=30)
            for old in old_workers:
                seen = len(acking.acked)
                old.signal(signal.SIGTERM)
                assert old.wait(15) == 0, old.output()
                wait_until(lambda s=seen: len(acking.acked) >= s + 20, timeout=30)
            load.stop_event.set()
            load.join(15)
            wait_until(
                lambda: set(load.accepted) <= acking.acked,
                timeout=30,
                message=new_worker.output(),
            )
            assert new_worker.process.poll() is None, new_worker.output()
            ingested_by = Counter(load.accepted.values())
            delivered_by_old = [attempts_logged(w) for w in old_workers]
            delivered_by_new = attempts_logged(new_worker)
            priorities = dict(
                db.session.execute(text("SELECT event_id, priority FROM deliveries")).all()
            )
            counts = check_invariants(
                (0, 0, 0),
                accepted=list(load.accepted),
                acknowledged={(i, endpoint_id) for i in acking.acked},
                allow_waiting=False,
            )
        finally:
            for process in processes:
                process.stop()
            db.session.remove()
            db.engine.dispose()

    assert load.refused == []
    assert ingested_by["N"] > 0 and ingested_by["N+1"] > 0, ingested_by
    assert all(n > 0 for n in delivered_by_old) and delivered_by_new > 0
    # Exactly once each, whoever ingested and whoever delivered it.
    assert set(acking.tries) == set(load.accepted)
    assert set(acking.tries.values()) == {1}
    assert counts == {"succeeded": len(load.accepted)}
    # Code N's rows got the server default, code N+1's its own value.
    assert {priorities[i] for i, who in load.accepted.items() if who == "N"} == {0}
    assert {priorities[i] for i, who in load.accepted.items() if who == "N+1"} == {1}


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False
