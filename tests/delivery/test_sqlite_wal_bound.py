"""The SQLite `-wal` file is bounded: it may grow while a reader pins old frames, and goes back
under journal_size_limit once the log restarts (it kept its 40 MB high-water size before)."""

from __future__ import annotations

import os

from sqlalchemy import create_engine, text

from tests import conftest
from tests.delivery.test_retention import add_history, endpoint_id
from webhook_admin import create_app
from webhook_admin.extensions import db
from webhook_admin.services.catalog import seed_catalog
from webhook_admin.services.retention import purge_expired
from webhook_admin.sqlite_pragmas import WAL_SIZE_LIMIT_BYTES


def test_the_wal_shrinks_back_under_the_limit_after_a_burst(tmp_path):
    path = tmp_path / "wal.db"
    # A plain engine: the app's connect handler (sqlite_pragmas.py) is registered for every
    # Engine once webhook_admin is imported, as in the web app and the workers.
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as c:
            c.execute(text("CREATE TABLE rows (id INTEGER PRIMARY KEY, body BLOB)"))
        reader = engine.connect()
        reader.exec_driver_sql("BEGIN")
        reader.exec_driver_sql("SELECT count(*) FROM rows").all()  # holds a snapshot
        blob = os.urandom(64 * 1024)
        for _ in range(6):  # 6 commits of 64 rows x 64 KiB: 24 MiB the log cannot reset over
            with engine.begin() as c:
                c.execute(text("INSERT INTO rows (body) VALUES (:b)"), [{"b": blob}] * 64)
        wal = str(path) + "-wal"
        assert os.path.getsize(wal) > WAL_SIZE_LIMIT_BYTES  # the premise: it did grow
        reader.exec_driver_sql("COMMIT")
        reader.close()
        # The readers are gone: the next commits checkpoint (auto, PASSIVE) and restart the
        # log, which truncates the file to the limit.
        for _ in range(3):
            with engine.begin() as c:
                c.execute(text("DELETE FROM rows WHERE id IN (SELECT min(id) FROM rows)"))
        assert os.path.getsize(wal) <= WAL_SIZE_LIMIT_BYTES
    finally:
        engine.dispose()


def test_the_purge_checkpoints_the_sqlite_wal(tmp_path, redis_server):
    """After a purge the log is truncated (wal_checkpoint(TRUNCATE)), not left at its size.
    A SQLite file of its own, whichever database the suite runs on."""
    from flask_migrate import upgrade

    path = tmp_path / "purge.db"
    app = create_app(conftest.test_environ(f"sqlite:///{path}", redis_server.url))
    with app.app_context():
        upgrade()
        seed_catalog()
        db.session.commit()
        add_history(endpoint_id(), [(40, "succeeded", 40)] * 400)
        db.session.remove()  # no open read transaction of ours pins the log
        assert os.path.getsize(str(path) + "-wal") > 0  # the premise: the writes are in it

        purge_expired(retention_days=30, batch=50)

        assert os.path.getsize(str(path) + "-wal") == 0
        db.session.remove()
        db.engine.dispose()
